"""Write the bicubic LR images of a benchmark set that has HR images only.

``python -m lit_sisr.data.make_lr <set folder> --scales 2 3 4`` reads ``<set>/HR/*`` and writes
``<set>/LR_bicubic/X<s>/<name>x<s>.png`` (the EDSR ``benchmark.tar`` layout the configs read),
each made as the SR literature makes its LR files: top-left modcrop to a multiple of the scale,
then MATLAB's ``imresize(HR, 1/s, 'bicubic')`` (:func:`lit_sisr.resize.bicubic_downscale`,
which reproduces every Set5/Set14/B100 LR file of the EDSR archive bit for bit). Grey HR images
give grey LR files, as in that archive (Set14).

Nothing is half-written: every LR image is made first in a hidden folder inside the set
(``<set>/.make_lr.tmp``), and only when all of them are made are they moved into place, each by
an atomic rename. A file already in place is compared with the one made (decoded pixels and
grey/colour): an identical file is left as is, a different one stops the command before anything
is moved, naming the file (remove it, or the folder, to make it again). Bad inputs (no ``HR``
folder, no images, an unreadable image, an image smaller than the scale) end in one
``error: ...`` line, exit status 2.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from lit_sisr.data.io import ImageError, decoding_errors, list_images, read_image
from lit_sisr.resize import bicubic_downscale

SCALES = (2, 3, 4)
_TMP = ".make_lr.tmp"


class MakeLRError(RuntimeError):
    """A set folder that cannot be given LR images; the message names the file or folder."""


def lr_path(set_dir: Path, hr_file: Path, scale: int) -> Path:
    """``<set>/LR_bicubic/X<s>/<stem>x<s>.png`` (the EDSR naming, :class:`lit_sisr.data.datasets.PairedImages`)."""
    return set_dir / "LR_bicubic" / f"X{scale}" / f"{hr_file.stem}x{scale}.png"


def _is_grey(path: Path) -> bool:
    with decoding_errors(path), Image.open(path) as im:
        return im.mode in ("1", "L")


def make_lr_image(hr_file: Path, scale: int) -> np.ndarray:
    """The LR image of ``hr_file`` at ``scale`` as uint8 levels: H x W (grey HR) or H x W x 3."""
    hr = read_image(hr_file)  # 3 x H x W uint8 (grey copied to R, G, B)
    h, w = hr.shape[-2:]
    if h < scale or w < scale:
        raise MakeLRError(f"{hr_file}: {w}x{h} is smaller than the scale {scale}; expected at least {scale}x{scale}")
    lr = bicubic_downscale(hr[None].float(), scale)[0].to(torch.uint8).permute(1, 2, 0).numpy()
    return lr[..., 0].copy() if _is_grey(hr_file) else lr


def _pixels(path: Path) -> np.ndarray:
    """Decoded levels of a PNG in its stored mode (H x W grey, H x W x 3 colour)."""
    with decoding_errors(path), Image.open(path) as im:
        if im.mode in ("1", "L"):
            return np.asarray(im.convert("L"))
        return read_image(path).permute(1, 2, 0).numpy()


def make_lr(set_dir: str | Path, scales: Sequence[int] = SCALES, *, progress: bool = True) -> dict[str, int]:
    """Write the LR images of ``<set_dir>/HR`` at ``scales``; returns counts ``written``/``present``."""
    set_dir = Path(set_dir)
    bad = [s for s in scales if int(s) != s or s < 2]
    if bad or not scales:
        raise MakeLRError(f"--scales {' '.join(map(str, scales))}: expected integer scales of 2 or more, e.g. 2 3 4")
    hr_dir = set_dir / "HR"
    if not hr_dir.is_dir():
        raise MakeLRError(f"{set_dir}: no HR folder {hr_dir}; expected <set>/HR/<images> (the EDSR benchmark layout)")
    hr_files = list_images(hr_dir)
    tmp = set_dir / _TMP
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed earlier run
    made: list[tuple[Path, Path]] = []  # (temporary file, target)
    present = 0
    from tqdm import tqdm

    try:
        jobs = [(hr_file, scale) for scale in scales for hr_file in hr_files]
        for hr_file, scale in tqdm(jobs, desc=f"{set_dir.name}: LR x{'/x'.join(map(str, scales))}",
                                   unit="image", leave=False,
                                   disable=None if progress else True):  # None: off when not a terminal
            lr = make_lr_image(hr_file, scale)
            target = lr_path(set_dir, hr_file, scale)
            if target.exists():
                if not target.is_file() or not np.array_equal(_pixels(target), lr):
                    raise MakeLRError(
                        f"{target} already exists and differs from the MATLAB-bicubic LR image of {hr_file} at x{scale}; "
                        "nothing was written (remove it to make it again)")
                present += 1
                continue
            staged = tmp / target.relative_to(set_dir)
            staged.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(lr).save(staged, format="PNG")
            made.append((staged, target))
        for staged, target in made:  # every image is made: move them in, one atomic rename each
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"written": len(made), "present": present}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lit_sisr.data.make_lr",
        description="Write <set>/LR_bicubic/X<s>/<name>x<s>.png from <set>/HR (modcrop, then MATLAB-exact bicubic).",
    )
    parser.add_argument("set_dir", help="a set folder holding HR/ (e.g. data/benchmark/Manga109)")
    parser.add_argument("--scales", type=int, nargs="+", default=list(SCALES), help="scales (default: 2 3 4)")
    args = parser.parse_args(argv)
    try:
        done = make_lr(args.set_dir, args.scales)
    except (MakeLRError, ImageError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.set_dir}: wrote {done['written']} LR images, {done['present']} already present and identical "
          f"({Path(args.set_dir) / 'LR_bicubic'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
