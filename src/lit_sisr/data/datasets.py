"""SR datasets: random paired patches for training, whole images for validation and testing.

Training images are decoded once: into process memory, or (``cache_dir``) into memory-mapped
``.npy`` files that are checked against their sources, reused by later runs and shared page by
page with every DataLoader worker (:mod:`lit_sisr.data.cache`). Whole training batches are cut
straight from the stored images (:meth:`TrainPatches.__getitems__`), optionally as uint8 levels.
LR images are read from an LR folder in the EDSR naming (``<stem>x<s>.png``) or made with the
MATLAB-exact bicubic (:mod:`lit_sisr.resize`) from the top-left modcrop of HR.

Training follows the BAM authors' protocol (bam_reference.md section 5) with the standard
degradation: optionally five crops per image (four corners and centre, half size; a 5x
expansion), one random LR patch per pair per epoch (HR patch = LR patch * scale), random
horizontal flip, vertical flip and 90-degree rotation applied identically to LR and HR.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from lit_sisr.data.batch_slots import BatchSlots, SlotBatch
from lit_sisr.data.cache import DecodedCache
from lit_sisr.data.io import ImageError, list_images, read_image, to_float
from lit_sisr.protocols import get_protocol, standard_pair


@dataclass(frozen=True)
class ImageSet:
    """Where a set of images lives.

    ``hr_dir``: folder of HR images. ``lr_dir``: folder of LR images named ``<stem>x<scale><ext>``
    (None: make LR with the MATLAB bicubic). ``split``: [start, stop) over the sorted HR files,
    so one folder can give disjoint training and validation sets.
    """

    name: str
    hr_dir: str
    lr_dir: str | None = None
    split: Sequence[int] | None = None

    def files(self) -> list[Path]:
        files = list_images(self.hr_dir)
        if self.split is not None:
            start, stop = self.split
            files = files[start:stop]
            if not files:
                raise FileNotFoundError(f"split {list(self.split)} of {self.hr_dir} is empty")
        return files


def _find_lr(lr_dir: str, hr: Path, scale: int) -> Path | None:
    """The LR file of ``hr`` in ``lr_dir`` (EDSR naming ``<stem>x<s><ext>``, else ``.png``), or None."""
    for suffix in (hr.suffix, ".png"):
        path = Path(lr_dir) / f"{hr.stem}x{scale}{suffix}"
        if path.is_file():
            return path
    return None


def lr_file(lr_dir: str, hr: Path, scale: int) -> Path:
    """The stored LR file of ``hr`` (:func:`_find_lr`); an error naming it when there is none."""
    path = _find_lr(lr_dir, hr, scale)
    if path is None:
        raise ImageError(f"{hr}: no LR image {hr.stem}x{scale}{hr.suffix} in {lr_dir}")
    return path


# Where an evaluation set's LR images come from (the ``lr_source`` of its results): the set's
# stored files, or made from HR by the protocol (standard: the MATLAB-exact bicubic).
STORED = "stored"


def lr_source(images: ImageSet, scale: int, protocol: str = "standard") -> str:
    """``stored`` when every HR image of ``images`` has its LR file in ``lr_dir``; otherwise what
    the protocol makes from HR (``bicubic``: MATLAB-exact, bit for bit the shared benchmark LR
    files; ``pil_bicubic`` under ``bam_paper``, which never reads LR files). A set with only some
    of its LR files is refused: a mix would score some images on other LR than the rest."""
    protocol_ = get_protocol(protocol)
    if images.lr_dir is None or not protocol_.uses_lr_files:
        return protocol_.made_lr
    files = images.files()
    missing = [hr for hr in files if _find_lr(images.lr_dir, hr, scale) is None]
    if not missing:
        return STORED
    if len(missing) == len(files):
        return protocol_.made_lr  # an HR-only set (Manga109, a set of one's own)
    hr = missing[0]
    raise ImageError(
        f"{hr}: no LR image {hr.stem}x{scale}{hr.suffix} in {images.lr_dir} ({len(files) - len(missing)} of "
        f"{len(files)} present); complete the folder, or remove it to make every LR image from HR with the MATLAB bicubic"
    )


def load_pair(hr_path: Path, lr_dir: str | None, scale: int, protocol: str = "standard") -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) uint8 tensors made as the evaluation ``protocol`` says (:mod:`lit_sisr.protocols`):
    for ``standard``, LR from ``lr_dir`` (or the MATLAB bicubic of HR) and HR cropped top-left to
    exactly LR size * scale; ``bam_paper`` resizes HR and makes LR with PIL."""
    protocol_ = get_protocol(protocol)
    hr = read_image(hr_path)
    if min(hr.shape[-2:]) < scale:
        raise ImageError(f"{hr_path}: {tuple(hr.shape[-2:])} is smaller than the scale {scale}")
    lr = None
    if lr_dir is not None and protocol_.uses_lr_files:
        lr = _read_lr(lr_dir, hr_path, hr, scale)
    return protocol_.make_pair(lr, hr, scale)


def _read_lr(lr_dir: str, hr_path: Path, hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The stored LR image of ``hr_path``, checked to be HR's size divided by ``scale``."""
    lr_path = lr_file(lr_dir, hr_path, scale)
    lr = read_image(lr_path)
    (lh, lw), (hh, hw) = lr.shape[-2:], hr.shape[-2:]
    if not (lh * scale <= hh < (lh + 1) * scale and lw * scale <= hw < (lw + 1) * scale):
        raise ImageError(
            f"{lr_path}: LR {lh}x{lw} does not match HR {hr_path} ({hh}x{hw}) at scale {scale}; "
            f"expected LR {hh // scale}x{hw // scale}"
        )
    return lr


def five_crops(img: torch.Tensor) -> list[torch.Tensor]:
    """Four corners and centre, each half the height and width (torchvision ``FiveCrop``)."""
    h, w = img.shape[-2:]
    ch, cw = h // 2, w // 2
    # torchvision center_crop rounds half to even (Python round), not down.
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    corners = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), (top, left)]
    return [img[:, y : y + ch, x : x + cw].contiguous() for y, x in corners]


def augment(lr: torch.Tensor, hr: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random h-flip, v-flip and 90-degree rotation (each p = 0.5), the same for LR and HR.
    Exact dihedral ops (flip/rot90), not interpolating warps."""
    hflip, vflip, rot = torch.randint(0, 2, (3,), generator=g).tolist()
    if hflip:
        lr, hr = lr.flip(-1), hr.flip(-1)
    if vflip:
        lr, hr = lr.flip(-2), hr.flip(-2)
    if rot:
        lr, hr = lr.rot90(1, (-2, -1)), hr.rot90(1, (-2, -1))
    return lr, hr


# A decoded-cache entry: (source files, variant).
_Entry = tuple[list[Path], str]


def _paired(lrs: list[torch.Tensor], hrs: list[torch.Tensor], scale: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(LR, HR) with HR cropped top-left to LR size x scale, as a view (no copy)."""
    return [(lr, hr[:, : lr.shape[-2] * scale, : lr.shape[-1] * scale]) for lr, hr in zip(lrs, hrs)]


class TrainPatches(Dataset):
    """One random LR patch (and its HR patch) per stored pair per epoch.

    ``repeat`` multiplies the epoch length (a small set seen several times per epoch). Items are
    addressed as ``(index, epoch)`` (see :class:`lit_sisr.data.samplers.EpochSampler`) and their
    randomness comes from a generator seeded with (seed, epoch, index), so an item is a pure
    function of those numbers: reproducible with any number of workers and after a resume.

    ``dtype``: ``"float32"`` items are levels / 255 (:func:`to_float`); ``"uint8"`` items are the
    levels themselves, a quarter of the bytes to move between processes and to the device (the
    model divides by 255 there: :meth:`lit_sisr.module.LitSR.on_after_batch_transfer`).

    ``cache_dir``: keep the decoded pairs as memory-mapped ``.npy`` files there
    (:class:`lit_sisr.data.cache.DecodedCache`: built once, verified against the sources, reused
    by later runs, pages shared by all DataLoader workers). None keeps them in process memory.
    """

    def __init__(
        self,
        images: ImageSet,
        scale: int,
        patch_size: int = 64,
        five_crop: bool = False,
        augment: bool = True,
        repeat: int = 1,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        dtype: str = "float32",
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"TrainPatches dtype={dtype!r}: expected 'float32' (levels / 255) or 'uint8' (levels)")
        self.dtype = dtype
        # Shared slots that batches made in a DataLoader worker are written into (set by
        # SRDataModule with workers; needs collate_patches). None: plain tensors.
        self.batch_slots: BatchSlots | None = None
        self.scale, self.patch_size, self.augment, self.repeat, self.seed = scale, patch_size, augment, repeat, seed
        if five_crop and images.lr_dir is not None:
            raise ValueError(f"five_crop needs LR made from HR (lr_dir=null), got lr_dir={images.lr_dir}")
        self.cache = DecodedCache(cache_dir) if cache_dir is not None else None
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.sources: list[Path] = []
        # The (HR, LR) cache entries of each source image, to re-open the memory maps after pickling.
        self._entries: list[tuple[_Entry, _Entry]] = []
        for path in images.files():
            hr_entry, lr_entry = self._entry(path, images.lr_dir, five_crop)
            hrs = self._decoded(hr_entry, lambda: five_crops(read_image(path)) if five_crop else [read_image(path)])
            lrs = self._decoded(lr_entry, lambda: self._make_lr(path, images.lr_dir, hrs))
            self._entries.append((hr_entry, lr_entry))
            for lr, hr in _paired(lrs, hrs, scale):
                if min(lr.shape[-2:]) < patch_size:
                    raise ImageError(
                        f"{path}: LR size {tuple(lr.shape[-2:])} is smaller than the training patch {patch_size}"
                    )
                self.pairs.append((lr, hr))
                self.sources.append(path)

    def _entry(self, path: Path, lr_dir: str | None, five_crop: bool) -> tuple[_Entry, _Entry]:
        """Cache entries (sources, variant) of one image's HR (whole, or its five crops) and of its
        LR at this scale. The HR entry does not depend on the scale or on where LR comes from, so
        runs at x2, x3 and x4 share it; each pair's HR is a top-left view of it (LR size x scale)."""
        crop = "five-crop " if five_crop else ""
        hr = ([path], f"{crop}hr")
        if lr_dir is not None:
            return hr, ([path, lr_file(lr_dir, path, self.scale)], f"lr x{self.scale} lr-file")
        return hr, ([path], f"{crop}lr x{self.scale} bicubic")

    def _decoded(self, entry: _Entry, make: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
        """The uint8 arrays of a cache entry (memory-mapped), or ``make()`` without a cache."""
        if self.cache is None:
            return make()
        return [torch.from_numpy(a) for a in self.cache.get(*entry, lambda: [t.numpy() for t in make()])]

    def _make_lr(self, path: Path, lr_dir: str | None, hrs: list[torch.Tensor]) -> list[torch.Tensor]:
        """LR of each HR: the stored file, or the MATLAB-exact bicubic of its top-left modcrop."""
        if min(hrs[0].shape[-2:]) < self.scale:
            raise ImageError(f"{path}: {tuple(hrs[0].shape[-2:])} is smaller than the scale {self.scale}")
        if lr_dir is not None:
            return [_read_lr(lr_dir, path, hrs[0], self.scale)]
        return [standard_pair(None, hr, self.scale)[0] for hr in hrs]

    def __getstate__(self) -> dict:
        # Memory-mapped pairs are re-opened, not pickled (spawned workers would copy the data).
        state = self.__dict__.copy()
        if self.cache is not None:
            state["pairs"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.pairs is None:
            self.pairs = []
            for hr_entry, lr_entry in self._entries:
                hrs, lrs = ([torch.from_numpy(a) for a in self.cache.get(*e, _refuse_rebuild)] for e in (hr_entry, lr_entry))
                self.pairs.extend(_paired(lrs, hrs, self.scale))

    def __len__(self) -> int:
        return len(self.pairs) * self.repeat

    def _window(self, index: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        """Item (index, epoch)'s LR and HR patches as views of the stored pair, and the generator
        (seeded from seed, epoch, index) that goes on to draw the augmentation."""
        lr, hr = self.pairs[index % len(self.pairs)]
        # hash() of a tuple of ints is stable across processes (no PYTHONHASHSEED salt).
        g = torch.Generator().manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)
        p, s = self.patch_size, self.scale
        y = int(torch.randint(0, lr.shape[-2] - p + 1, (1,), generator=g))
        x = int(torch.randint(0, lr.shape[-1] - p + 1, (1,), generator=g))
        return lr[:, y : y + p, x : x + p], hr[:, y * s : (y + p) * s, x * s : (x + p) * s], g

    def _crop(self, index: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 (LR, HR) patch of item (index, epoch)."""
        lr_patch, hr_patch, g = self._window(index, epoch)
        if self.augment:
            lr_patch, hr_patch = augment(lr_patch, hr_patch, g)
        return lr_patch, hr_patch

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = item if isinstance(item, tuple) else (item, 0)
        lr_patch, hr_patch = self._crop(index, epoch)
        if self.dtype == "uint8":
            return lr_patch.contiguous(), hr_patch.contiguous()
        return to_float(lr_patch), to_float(hr_patch)

    def __getitems__(self, items: Sequence[int | tuple[int, int]]) -> "PatchList":
        """A whole batch at once (the DataLoader calls this with a batch of indices).

        The same pixels as ``[self[i] for i in items]``, with one copy per patch (the crop, flips
        and rotation are strided views of the stored image) into a uint8 batch, and one float
        conversion per batch. The items are views of the batch: :func:`collate_patches` hands the
        batch on as it is, and the default collate still works (it stacks a copy) when
        ``batch_slots`` is None. With ``batch_slots`` set, a worker writes the batch straight
        into a free shared slot (:mod:`lit_sisr.data.batch_slots`) and ``collate_patches`` sends
        that slot; this needs ``collate_patches``, since any other collate would leave the slot
        taken.
        """
        p, s, n = self.patch_size, self.scale, len(items)
        dtype = _DTYPES[self.dtype]
        specs = [((n, 3, p, p), dtype), ((n, 3, p * s, p * s), dtype)]
        # In a worker, write straight into a shared batch slot when one is free: no batch to
        # allocate (faulting in fresh pages cost more than cutting the patches) and no copy on
        # the way out; collate_patches then sends the slot.
        reserved = None
        if self.batch_slots is not None and get_worker_info() is not None:
            reserved = self.batch_slots.reserve(specs)
        if reserved is None:
            reserved = [torch.empty(shape, dtype=dtype) for shape, _ in specs], None
        out, sent = reserved
        levels = out if dtype == torch.uint8 else [torch.empty(shape, dtype=torch.uint8) for shape, _ in specs]
        lr_out, hr_out = (t.numpy() for t in levels)
        for i, item in enumerate(items):
            index, epoch = item if isinstance(item, tuple) else (item, 0)
            self._crop_into(index, epoch, lr_out[i], hr_out[i])
        if dtype != torch.uint8:  # float batches: exact levels in float32, then / 255 (as to_float)
            for target, level in zip(out, levels):
                target.copy_(level).div_(255)
        return PatchList(zip(*out), batch=out, sent=sent)

    def batch_nbytes(self, batch_size: int) -> int:
        """Bytes of one (LR, HR) batch as :meth:`__getitems__` makes it."""
        p, s = self.patch_size, self.scale
        return batch_size * 3 * (p * p + (p * s) ** 2) * _DTYPES[self.dtype].itemsize

    def _crop_into(self, index: int, epoch: int, lr_out: np.ndarray, hr_out: np.ndarray) -> None:
        """:meth:`_crop` written into ``lr_out`` and ``hr_out``: the same random draws, flips and
        rotation, copied once from the stored image (a strided view of it)."""
        lr_patch, hr_patch, g = self._window(index, epoch)
        flips = torch.randint(0, 2, (3,), generator=g).tolist() if self.augment else (0, 0, 0)
        _dihedral_into(lr_out, lr_patch.numpy(), *flips)
        _dihedral_into(hr_out, hr_patch.numpy(), *flips)


# OpenCV flip codes: 1 reverses columns (horizontal flip), 0 rows (vertical), -1 both.
_FLIP_CODES = {(0, 0): None, (1, 0): 1, (0, 1): 0, (1, 1): -1}


def _dihedral_into(dst: np.ndarray, src: np.ndarray, hflip: int, vflip: int, rot: int) -> None:
    """``dst = augment(src)`` for one C x H x W uint8 patch (:func:`augment`'s order: horizontal
    flip, vertical flip, then ``rot90`` over (H, W)), channel by channel with OpenCV. Exact; its
    vectorised flips and transposes are 3-4x faster than numpy's byte-by-byte strided copies,
    which took most of a worker's time (``benchmarks/data_path.py``)."""
    if rot:  # rot90 is a transpose of the column-reversed image: fold that reversal into the flips
        hflip = 1 - hflip
    code = _FLIP_CODES[(hflip, vflip)]
    for plane, out in zip(src, dst):
        if rot:
            cv2.transpose(plane if code is None else cv2.flip(plane, code), dst=out)
        elif code is None:
            np.copyto(out, plane)
        else:
            cv2.flip(plane, code, dst=out)


class PatchList(list):
    """Per-item (LR, HR) views of one collated batch, kept in ``batch``; ``sent``: what a worker
    sends for it when the batch was written into a shared slot (else None)."""

    def __init__(self, items, batch: "list[torch.Tensor]", sent: "SlotBatch | None" = None) -> None:
        super().__init__(items)
        self.batch, self.sent = batch, sent


def collate_patches(samples):
    """DataLoader ``collate_fn``: the batch :meth:`TrainPatches.__getitems__` already built (its
    slot message when it was written into a shared slot), else torch's default collation."""
    if isinstance(samples, PatchList):
        return samples.sent if samples.sent is not None else list(samples.batch)
    return default_collate(samples)


_DTYPES = {"float32": torch.float32, "uint8": torch.uint8}


def _refuse_rebuild() -> list:
    raise RuntimeError("decoded cache entry changed after the dataset was built (a source image was modified?)")


class PairedImages(Dataset):
    """Whole LR/HR images for validation and testing (batch size 1: sizes differ).

    Items are (LR, HR, index) as floats in [0, 1]; ``names[index]`` is the image's file stem and
    ``lr_source`` where the LR images come from (:func:`lr_source`). With ``preload`` (validation
    and test loaders, which run many times) every pair is decoded once, here; without it
    (``eval.py``, one pass) each pair is decoded when it is read.
    """

    def __init__(self, images: ImageSet, scale: int, protocol: str = "standard", preload: bool = True) -> None:
        self.name, self.scale, self.protocol = images.name, scale, protocol
        self.lr_source = lr_source(images, scale, protocol)
        self.files = images.files()
        self.names = [p.stem for p in self.files]
        self._lr_dir = images.lr_dir if self.lr_source == STORED else None
        self.pairs = [self._pair(i) for i in range(len(self.files))] if preload else None

    def _pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return load_pair(self.files[index], self._lr_dir, self.scale, self.protocol)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        lr, hr = self.pairs[index] if self.pairs is not None else self._pair(index)
        return to_float(lr), to_float(hr), index
