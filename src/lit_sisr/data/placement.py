"""Where training images live while training: on the training device, or on the host.

``data.placement`` (docs/benchmarks.md, section 2):

- ``device``: the decoded uint8 images of :class:`~lit_sisr.data.datasets.TrainPatches` are copied
  once into two flat tensors on the training device (LR at this scale, HR), and every batch is
  cut there by one gather (:func:`cut_patches`): no DataLoader workers, no per-batch
  host-to-device copy of pixels. Each epoch's crop positions and flips are drawn on the host
  from the same (seed, epoch, index) generators as the host path
  (:meth:`TrainPatches.draws`) and copied to the device once per epoch, so batches are
  bit-identical to the host path's (``tests/test_placement.py``). Under DDP each rank holds its
  own copy and iterates its own shard (:class:`~lit_sisr.data.samplers.EpochSampler`).
- ``host``: the memory-mapped decoded cache and torch's own DataLoader (with workers, torch's
  shared-memory transport); Lightning moves each batch to the device.
- ``auto``: ``device`` when the training device is CUDA and the decoded set fits in
  ``device_memory_share`` of its memory, else ``host``.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from lit_sisr.data.samplers import EpochSampler

PLACEMENTS = ("device", "host", "auto")


def choose_placement(placement: str, device: torch.device, nbytes: int, share: float) -> str:
    """``device`` or ``host`` for ``placement`` (one of :data:`PLACEMENTS`) on ``device``, for a
    decoded training set of ``nbytes`` bytes."""
    if placement not in PLACEMENTS:
        raise ValueError(f"data.placement={placement!r}: expected one of {', '.join(PLACEMENTS)}")
    if not 0 < share <= 1:
        raise ValueError(f"data.device_memory_share={share}: expected a fraction in (0, 1]")
    if placement != "auto":
        return placement
    if device.type != "cuda":
        return "host"
    total = torch.cuda.get_device_properties(device).total_memory
    return "device" if nbytes <= share * total else "host"


def _flat(arrays: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The C x H x W uint8 ``arrays`` one after another in one flat tensor on ``device`` (copied
    array by array: no host-side concatenation), and each array's (offset, row stride, plane
    stride)."""
    sizes = [a.numel() for a in arrays]
    flat = torch.empty(sum(sizes), dtype=torch.uint8, device=device)
    geometry, offset = [], 0
    for array, size in zip(arrays, sizes):
        flat[offset:offset + size].copy_(array.reshape(-1))
        geometry.append((offset, array.shape[-1], array.shape[-2] * array.shape[-1]))
        offset += size
    return flat, torch.tensor(geometry, dtype=torch.int64, device=device)


def cut_patches(flat: torch.Tensor, geometry: torch.Tensor, draws: torch.Tensor, size: int,
                scale: int = 1) -> torch.Tensor:
    """The N x 3 x ``size`` x ``size`` patches given by ``draws`` (rows of
    :meth:`TrainPatches.draws`: pair, y, x, hflip, vflip, rot, with y and x in LR pixels, times
    ``scale`` here) from images stored in ``flat`` with per-pair ``geometry`` (offset, row stride,
    plane stride), flipped and rotated as :func:`~lit_sisr.data.datasets.dihedral` does: one
    index computation and one gather, the same for every batch size.

    ``dihedral`` flips columns (hflip), then rows (vflip), then ``rot90(1, (-2, -1))``, which maps
    output (i, j) to the flipped patch's (j, size-1-i). So the source row of output (i, j) is
    ``y + v(a)`` and its column ``x + h(b)``, with (a, b) = (i, j) or, rotated, (j, size-1-i), and
    v, h the optional reversals; the flat index splits into a term of i and a term of j."""
    pair, y, x, hflip, vflip, rot = (c for c in draws.unbind(1))
    base, row, plane = geometry[pair].unbind(1)
    a = torch.arange(size, device=flat.device)
    rev = size - 1 - a
    rows = (y * scale)[:, None] + torch.where(vflip[:, None].bool(), rev, a)  # source row of a
    cols = (x * scale)[:, None] + torch.where(hflip[:, None].bool(), rev, a)  # source column of b
    rows = rows * row[:, None]
    turned = rot[:, None].bool()
    along_i = torch.where(turned, cols.flip(1), rows)  # rotated: column h(size-1-i)
    along_j = torch.where(turned, rows, cols)  # rotated: row v(j)
    channel = base[:, None] + torch.arange(3, device=flat.device)[None, :] * plane[:, None]
    index = channel[:, :, None, None] + along_i[:, None, :, None] + along_j[:, None, None, :]
    return flat[index]


class DevicePatches:
    """Training batches cut on ``device`` from a copy of ``data``'s decoded images there.

    An iterable Lightning takes as a training loader: ``len()`` is the epoch's batch count,
    ``sampler`` (an :class:`EpochSampler` with the trainer's position) gives this rank's items,
    skipping those already trained after a mid-epoch resume, and ``state_dict`` /
    ``load_state_dict`` mark it resumable (the position lives in Lightning's progress counters,
    as for :class:`~lit_sisr.data.samplers.ResumableLoader`). Batches are uint8 (``dtype="uint8"``)
    or levels / 255 in float32, as the host path makes them.
    """

    def __init__(self, data, sampler: EpochSampler, batch_size: int, device: torch.device | str) -> None:
        self.data, self.sampler, self.batch_size = data, sampler, batch_size
        self.device = torch.device(device)
        lrs, hrs = zip(*data.arrays)
        self.lr_flat, self.lr_geometry = _flat(list(lrs), self.device)
        self.hr_flat, self.hr_geometry = _flat(list(hrs), self.device)

    @property
    def nbytes(self) -> int:
        return self.lr_flat.numel() + self.hr_flat.numel()

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        keys = list(self.sampler)
        # The epoch's draws: made on the host (the same generators as the host path), sent once.
        draws = self.data.draws(keys).to(self.device)
        p, s = self.data.patch_size, self.data.scale
        for start in range(0, len(keys), self.batch_size):
            batch = draws[start:start + self.batch_size]
            lr = cut_patches(self.lr_flat, self.lr_geometry, batch, p)
            hr = cut_patches(self.hr_flat, self.hr_geometry, batch, p * s, s)
            yield self.data.levels_as_dtype(lr), self.data.levels_as_dtype(hr)

    def state_dict(self) -> dict[str, int]:
        epoch, done = self.sampler.current_position()
        return {"epoch": epoch, "batches_done": done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Nothing to load: the sampler reads the restored fit-loop progress itself."""
