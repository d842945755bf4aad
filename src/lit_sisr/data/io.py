"""Reading images for SR, with errors that name the file.

Images become uint8 tensors 3 x H x W (RGB). Grey images are expanded to RGB (Set14 has some);
RGBA and palette images are converted to RGB; 16-bit and CMYK images are refused, because an SR
benchmark is 8-bit RGB and a silent conversion would change the numbers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class ImageError(ValueError):
    """An image file that cannot be used; the message names the file."""


def read_image(path: str | Path) -> torch.Tensor:
    """Decode ``path`` to a uint8 RGB tensor 3 x H x W."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise ImageError(f"{path}: {mode} image (16-bit or float); expected 8-bit RGB or grey")
            if mode == "CMYK":
                raise ImageError(f"{path}: CMYK image; expected 8-bit RGB or grey")
            if mode != "RGB":
                im = im.convert("RGB")  # L, LA, P, RGBA: grey is expanded, alpha dropped
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageError(f"{path}: unreadable or truncated image ({err})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; errors if the folder is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def to_float(img: torch.Tensor) -> torch.Tensor:
    """uint8 levels -> float32 in [0, 1]."""
    return img.float().div_(255)
