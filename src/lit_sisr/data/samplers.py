"""Samplers that make training reproducible and evaluation exact under DDP."""
from __future__ import annotations

from typing import Iterator

from torch.utils.data import DistributedSampler


class EpochSampler(DistributedSampler):
    """A shuffling ``DistributedSampler`` that yields ``(index, epoch)``.

    The dataset seeds each item's crop and augmentation from (seed, epoch, index), so a sample
    does not depend on worker count or on the global RNG. Works for one process too
    (``num_replicas=1, rank=0``). Lightning calls ``set_epoch`` before each epoch.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        return ((int(i), epoch) for i in super().__iter__())
