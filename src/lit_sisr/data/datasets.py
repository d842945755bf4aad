"""SR datasets: random paired patches for training, whole images for validation and testing.

Training images are decoded once: into process memory, or (``cache_dir``) into memory-mapped
``.npy`` files that are checked against their sources, reused by later runs and shared page by
page with every forked DataLoader worker (:mod:`lit_sisr.data.cache`). Whole training batches are
cut straight from the stored images, optionally as uint8 levels, on the host or, copied once to the
training device, there (:mod:`lit_sisr.data.placement`).
LR images are read from an LR folder in the EDSR naming (``<stem>x<s>.png``) or made with the
MATLAB-exact bicubic (:mod:`lit_sisr.resize`) from the top-left modcrop of HR.

Training follows the BAM authors' protocol (docs/protocol.md, "The paper's training protocol") with the standard
degradation: optionally five crops per image (four corners and centre, half size; a 5x
expansion), one random LR patch per pair per epoch (HR patch = LR patch * scale), random
horizontal flip, vertical flip and 90-degree rotation applied identically to LR and HR.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from lit_sisr.data.cache import DecodedCache
from lit_sisr.data.io import ImageError, list_images, read_image, to_float
from lit_sisr.errors import MissingFileError
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
                raise MissingFileError(f"split {list(self.split)} of {self.hr_dir} is empty")
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


def dihedral(t: torch.Tensor, hflip: int, vflip: int, rot: int) -> torch.Tensor:
    """Horizontal flip, then vertical flip, then ``rot90(1, (-2, -1))``, each when its flag is
    set: one of the 8 exact dihedral transforms (not an interpolating warp)."""
    if hflip:
        t = t.flip(-1)
    if vflip:
        t = t.flip(-2)
    return t.rot90(1, (-2, -1)) if rot else t


def augment(lr: torch.Tensor, hr: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random h-flip, v-flip and 90-degree rotation (each p = 0.5), the same for LR and HR."""
    flips = torch.randint(0, 2, (3,), generator=g).tolist()
    return dihedral(lr, *flips), dihedral(hr, *flips)


# A decoded-cache entry: (source files, variant).
_Entry = tuple[list[Path], str]
# An item key: (index, epoch) (EpochSampler), or a bare index (epoch 0).
Key = int | tuple[int, int]


def _key(item: Key) -> tuple[int, int]:
    return item if isinstance(item, tuple) else (item, 0)


class TrainPatches(Dataset):
    """One random LR patch (and its HR patch) per stored pair per epoch.

    ``repeat`` multiplies the epoch length (a small set seen several times per epoch). Items are
    addressed as ``(index, epoch)`` (see :class:`lit_sisr.data.samplers.EpochSampler`) and their
    randomness comes from a generator seeded with (seed, epoch, index) (:meth:`draws`), so an item
    is a pure function of those numbers: reproducible with any number of workers, after a resume,
    and wherever the images are stored (:mod:`lit_sisr.data.placement` cuts the same patches on
    the training device).

    ``dataset[key]`` is one item; ``dataset[[key, ...]]`` a whole batch, as a DataLoader with
    ``batch_size=None`` over a batch sampler asks for it (torch's "automatic batching disabled"
    mode: one copy per patch, no collation).

    ``dtype``: ``"float32"`` items are levels / 255 (:func:`to_float`); ``"uint8"`` items are the
    levels themselves, a quarter of the bytes to move between processes and to the device (the
    model divides by 255 there: :meth:`lit_sisr.module.LitSR.on_after_batch_transfer`).

    ``cache_dir``: keep the decoded pairs as memory-mapped ``.npy`` files there
    (:class:`lit_sisr.data.cache.DecodedCache`: built once, verified against the sources, reused
    by later runs, pages shared by forked DataLoader workers). None keeps them in process memory.
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
        self.scale, self.patch_size, self.augment, self.repeat, self.seed = scale, patch_size, augment, repeat, seed
        if five_crop and images.lr_dir is not None:
            raise ValueError(f"five_crop needs LR made from HR (lr_dir=null), got lr_dir={images.lr_dir}")
        self.cache = DecodedCache(cache_dir) if cache_dir is not None else None
        # Per pair: the stored (LR, HR) arrays, and (LR, HR) with HR cropped top-left to LR size x
        # scale (a view of the stored HR).
        self.arrays: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.sources: list[Path] = []
        self._entries: list[tuple[_Entry, _Entry]] = []  # each source image's (HR, LR) cache entries
        for path in images.files():
            hr_entry, lr_entry = self._entry(path, images.lr_dir, five_crop)
            hrs = self._decoded(hr_entry, lambda: five_crops(read_image(path)) if five_crop else [read_image(path)])
            lrs = self._decoded(lr_entry, lambda: self._make_lr(path, images.lr_dir, hrs))
            self._entries.append((hr_entry, lr_entry))
            for lr, hr in zip(lrs, hrs):
                if min(lr.shape[-2:]) < patch_size:
                    raise ImageError(
                        f"{path}: LR size {tuple(lr.shape[-2:])} is smaller than the training patch {patch_size}"
                    )
                self.arrays.append((lr, hr))
                self.pairs.append((lr, hr[:, : lr.shape[-2] * scale, : lr.shape[-1] * scale]))
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

    def __len__(self) -> int:
        return len(self.pairs) * self.repeat

    @property
    def nbytes(self) -> int:
        """Bytes of the stored (decoded) LR and HR arrays."""
        return sum(lr.numel() + hr.numel() for lr, hr in self.arrays)

    def draws(self, items: Sequence[Key]) -> torch.Tensor:
        """Each item's random choices, one int64 row per item: (pair, y, x, hflip, vflip, rot),
        y and x the LR patch's top-left corner. Drawn from a generator seeded with (seed, epoch,
        index): first y, then x, then the three flip bits (all 0 without ``augment``)."""
        rows, p = [], self.patch_size
        g = torch.Generator()
        for item in items:
            index, epoch = _key(item)
            pair = index % len(self.pairs)
            lr = self.pairs[pair][0]
            # hash() of a tuple of ints is stable across processes (no PYTHONHASHSEED salt).
            g.manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)
            y = int(torch.randint(0, lr.shape[-2] - p + 1, (1,), generator=g))
            x = int(torch.randint(0, lr.shape[-1] - p + 1, (1,), generator=g))
            flips = torch.randint(0, 2, (3,), generator=g).tolist() if self.augment else [0, 0, 0]
            rows.append([pair, y, x, *flips])
        return torch.tensor(rows, dtype=torch.int64).view(len(rows), 6)

    def _patches(self, draw: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The (LR, HR) patch of one row of :meth:`draws`, flipped and rotated (views where possible)."""
        pair, y, x, *flips = draw
        lr, hr = self.pairs[pair]
        p, s = self.patch_size, self.scale
        return (dihedral(lr[:, y : y + p, x : x + p], *flips),
                dihedral(hr[:, y * s : (y + p) * s, x * s : (x + p) * s], *flips))

    def levels_as_dtype(self, levels: torch.Tensor) -> torch.Tensor:
        """uint8 levels as this dataset's dtype: as they are, or levels / 255 in float32."""
        return levels if self.dtype == "uint8" else levels.float().div_(255)

    def __getitem__(self, item: Key | list[Key]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(item, list):
            return self._batch(item)
        lr, hr = self._patches(self.draws([item])[0].tolist())
        return self.levels_as_dtype(lr.contiguous()), self.levels_as_dtype(hr.contiguous())

    def _batch(self, items: list[Key]) -> tuple[torch.Tensor, torch.Tensor]:
        """The items as one (LR, HR) batch: one copy per patch from a strided view of the stored
        image into the batch, one float conversion per batch."""
        p, s, n = self.patch_size, self.scale, len(items)
        lr_out = torch.empty((n, 3, p, p), dtype=torch.uint8)
        hr_out = torch.empty((n, 3, p * s, p * s), dtype=torch.uint8)
        for i, draw in enumerate(self.draws(items).tolist()):
            lr, hr = self._patches(draw)
            lr_out[i].copy_(lr)
            hr_out[i].copy_(hr)
        return self.levels_as_dtype(lr_out), self.levels_as_dtype(hr_out)


_DTYPES = {"float32": torch.float32, "uint8": torch.uint8}


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
