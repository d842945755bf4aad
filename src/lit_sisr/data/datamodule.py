"""The Lightning DataModule: training patches, one validation set, any number of test sets."""
from __future__ import annotations

import logging
from functools import partial
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
import torch
from torch.utils.data import DataLoader

from lit_sisr.data.datasets import ImageSet, PairedImages, TrainPatches
from lit_sisr.data.placement import DevicePatches, choose_placement
from lit_sisr.data.samplers import EpochBatchSampler, EpochSampler, ResumableLoader, training_position
from lit_sisr.data.testsets import as_image_sets

log = logging.getLogger(__name__)


def _image_set(spec: ImageSet | dict) -> ImageSet:
    return spec if isinstance(spec, ImageSet) else ImageSet(**spec)


class SRDataModule(pl.LightningDataModule):
    """Builds loaders from :class:`ImageSet` specs (plain dicts from Hydra work too).

    The trainer must run with ``use_distributed_sampler=False``: this module chooses the samplers
    itself. Training uses :class:`EpochSampler` over all ranks; validation and test use
    Lightning's ``UnrepeatedDistributedSampler`` under DDP, so each image counts exactly once
    (the default ``DistributedSampler`` pads with duplicates and biases the mean PSNR).
    """

    def __init__(
        self,
        name: str,
        scale: int,
        train: ImageSet | dict,
        val: ImageSet | dict,
        test: dict | Sequence[ImageSet | dict] = (),
        patch_size: int = 64,
        five_crop: bool = False,
        augment: bool = True,
        repeat: int = 1,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        prepare: Callable[[], Any] | None = None,
        cache: bool = False,
        cache_dir: str | None = None,
        train_dtype: str = "float32",
        protocol: str = "standard",
        placement: str = "host",
        device_memory_share: float = 0.5,
    ) -> None:
        super().__init__()
        self.name, self.scale = name, scale
        self.train_set, self.val_set = _image_set(train), _image_set(val)
        self.test_sets = as_image_sets(test, scale)  # a conf/testsets/ option, or ImageSet specs
        self.patch_size, self.five_crop, self.augment, self.repeat = patch_size, five_crop, augment, repeat
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self._prepare = prepare
        # Decoded training images memory-mapped from cache_dir (data/cache.py); training batches
        # as uint8 levels when train_dtype="uint8" (LitSR divides by 255 on its device).
        if cache and not cache_dir:
            raise ValueError("data.cache=true needs data.cache_dir (a folder for the decoded images)")
        self.cache_dir = cache_dir if cache else None
        self.train_dtype = train_dtype
        # Where the decoded training images live while training (data/placement.py): "device"
        # (cut there, no workers), "host" (DataLoader) or "auto" (device when CUDA and they fit in
        # device_memory_share of its memory). Checked here, decided in train_dataloader.
        choose_placement(placement, torch.device("cpu"), 0, device_memory_share)
        self.placement, self.device_memory_share = placement, device_memory_share
        self.placed: str | None = None  # what train_dataloader chose
        # How validation and test pairs are made (lit_sisr.protocols); training patches always
        # use the standard MATLAB-bicubic degradation.
        self.protocol = protocol
        self.train_data: TrainPatches | None = None
        self.val_data: PairedImages | None = None
        self.test_data: list[PairedImages] = []

    def prepare_data(self) -> None:
        if self._prepare is not None:
            self._prepare()

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_data is None:
            self.train_data = TrainPatches(
                self.train_set, self.scale, self.patch_size, self.five_crop, self.augment, self.repeat, self.seed,
                cache_dir=self.cache_dir, dtype=self.train_dtype,
            )
        if stage in (None, "fit", "validate") and self.val_data is None:
            self.val_data = PairedImages(self.val_set, self.scale, self.protocol)
        if stage in (None, "test") and not self.test_data:
            self.test_data = [PairedImages(s, self.scale, self.protocol) for s in self.test_sets]

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def train_dataloader(self) -> DataLoader | DevicePatches:
        replicas, rank = self._world()
        # Under a trainer the sampler reads the epoch and the batches already trained from the fit
        # loop: exact mid-epoch resume with any num_workers (samplers.training_position).
        position = partial(training_position, self.trainer) if self.trainer is not None else None
        sampler = EpochSampler(self.train_data, num_replicas=replicas, rank=rank, shuffle=True, seed=self.seed,
                               drop_last=True, batch_size=self.batch_size, position=position)
        device = self._device()
        self.placed = choose_placement(self.placement, device, self.train_data.nbytes, self.device_memory_share)
        if self.placed == "device":
            if self.num_workers:
                log.info("data.placement=device: batches are cut on %s; data.num_workers=%d is not used",
                         device, self.num_workers)
            return DevicePatches(self.train_data, sampler, self.batch_size, device)
        # Whole batches: the loader asks the dataset for each batch's keys at once (batch_size=None
        # turns torch's collation off) and sends it with torch's own worker transport.
        # ResumableLoader: a plain DataLoader that Lightning accepts as resumable mid-epoch.
        workers = self.num_workers
        return ResumableLoader(
            self.train_data,
            batch_size=None,
            sampler=EpochBatchSampler(sampler, self.batch_size),
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=False,
        )

    def _eval_loader(self, data: PairedImages) -> DataLoader:
        replicas, rank = self._world()
        if replicas > len(data):
            # A rank without images would skip the loop and leave the others waiting in the metric sync.
            raise ValueError(
                f"evaluation set {data.name} has {len(data)} image(s), fewer than the {replicas} DDP processes: "
                "every process needs at least one (use fewer devices, or a larger validation/test set)"
            )
        sampler = UnrepeatedDistributedSampler(data, num_replicas=replicas, rank=rank, shuffle=False) if replicas > 1 else None
        return DataLoader(data, batch_size=1, sampler=sampler, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_data)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(d) for d in self.test_data]
