"""SR datasets: random paired patches for training, whole images for validation and testing.

Decoded images are cached in memory as uint8 tensors when a dataset is built (one decode per
file per run, shared copy-on-write with forked DataLoader workers); LR images are read from an LR
folder in the EDSR naming (``<stem>x<s>.png``) or made with the MATLAB-exact bicubic
(:mod:`lit_sisr.resize`) from the top-left modcrop of HR.

Training follows the BAM authors' protocol (bam_reference.md section 5) with the standard
degradation: optionally five crops per image (four corners and centre, half size; a 5x
expansion), one random LR patch per pair per epoch (HR patch = LR patch * scale), random
horizontal flip, vertical flip and 90-degree rotation applied identically to LR and HR.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from lit_sisr.data.io import ImageError, list_images, read_image, to_float
from lit_sisr.resize import bicubic_downscale


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


def _lr_path(lr_dir: str, hr: Path, scale: int) -> Path:
    for suffix in (hr.suffix, ".png"):
        path = Path(lr_dir) / f"{hr.stem}x{scale}{suffix}"
        if path.is_file():
            return path
    raise ImageError(f"{hr}: no LR image {hr.stem}x{scale}{hr.suffix} in {lr_dir}")


def load_pair(hr_path: Path, lr_dir: str | None, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) uint8 tensors, HR cropped top-left to exactly LR size * scale."""
    hr = read_image(hr_path)
    if lr_dir is None:
        if min(hr.shape[-2:]) < scale:
            raise ImageError(f"{hr_path}: {tuple(hr.shape[-2:])} is smaller than the scale {scale}")
        lr = bicubic_downscale(hr[None].float(), scale)[0].to(torch.uint8)
    else:
        lr_path = _lr_path(lr_dir, hr_path, scale)
        lr = read_image(lr_path)
        (lh, lw), (hh, hw) = lr.shape[-2:], hr.shape[-2:]
        if not (lh * scale <= hh < (lh + 1) * scale and lw * scale <= hw < (lw + 1) * scale):
            raise ImageError(
                f"{lr_path}: LR {lh}x{lw} does not match HR {hr_path} ({hh}x{hw}) at scale {scale}; "
                f"expected LR {hh // scale}x{hw // scale}"
            )
    return lr, hr[:, : lr.shape[-2] * scale, : lr.shape[-1] * scale].contiguous()


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


class TrainPatches(Dataset):
    """One random LR patch (and its HR patch) per stored pair per epoch.

    ``repeat`` multiplies the epoch length (a small set seen several times per epoch). Items are
    addressed as ``(index, epoch)`` (see :class:`lit_sisr.data.samplers.EpochSampler`) and their
    randomness comes from a generator seeded with (seed, epoch, index), so an item is a pure
    function of those numbers: reproducible with any number of workers and after a resume.
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
    ) -> None:
        self.scale, self.patch_size, self.augment, self.repeat, self.seed = scale, patch_size, augment, repeat, seed
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.sources: list[Path] = []
        for path in images.files():
            if five_crop and images.lr_dir is not None:
                raise ValueError(f"five_crop needs LR made from HR (lr_dir=null), got lr_dir={images.lr_dir}")
            hrs = five_crops(read_image(path)) if five_crop else [None]
            for hr in hrs:
                lr, hr_full = self._pair(path, images.lr_dir, hr)
                if min(lr.shape[-2:]) < patch_size:
                    raise ImageError(
                        f"{path}: LR size {tuple(lr.shape[-2:])} is smaller than the training patch {patch_size}"
                    )
                self.pairs.append((lr, hr_full))
                self.sources.append(path)

    def _pair(self, path: Path, lr_dir: str | None, hr: torch.Tensor | None):
        if hr is None:
            return load_pair(path, lr_dir, self.scale)
        lr = bicubic_downscale(hr[None].float(), self.scale)[0].to(torch.uint8)
        return lr, hr[:, : lr.shape[-2] * self.scale, : lr.shape[-1] * self.scale].contiguous()

    def __len__(self) -> int:
        return len(self.pairs) * self.repeat

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = item if isinstance(item, tuple) else (item, 0)
        lr, hr = self.pairs[index % len(self.pairs)]
        # hash() of a tuple of ints is stable across processes (no PYTHONHASHSEED salt).
        g = torch.Generator().manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)
        p, s = self.patch_size, self.scale
        y = int(torch.randint(0, lr.shape[-2] - p + 1, (1,), generator=g))
        x = int(torch.randint(0, lr.shape[-1] - p + 1, (1,), generator=g))
        lr_patch = lr[:, y : y + p, x : x + p]
        hr_patch = hr[:, y * s : (y + p) * s, x * s : (x + p) * s]
        if self.augment:
            lr_patch, hr_patch = augment(lr_patch, hr_patch, g)
        return to_float(lr_patch), to_float(hr_patch)


class PairedImages(Dataset):
    """Whole LR/HR images for validation and testing (batch size 1: sizes differ).

    Items are (LR, HR, index); ``names[index]`` is the image's file stem.
    """

    def __init__(self, images: ImageSet, scale: int) -> None:
        self.name, self.scale = images.name, scale
        files = images.files()
        self.names = [p.stem for p in files]
        self.pairs = [load_pair(p, images.lr_dir, scale) for p in files]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        lr, hr = self.pairs[index]
        return to_float(lr), to_float(hr), index
