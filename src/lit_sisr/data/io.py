"""Reading images for SR, with errors that name the file.

Images become uint8 tensors 3 x H x W (RGB). What is converted and what is refused
(docs/errors.md lists every case with its message):

- grey (``L``) and bilevel (``1``) images are expanded to RGB: Set14 has grey images, and
  expanding them changes no level;
- palette (``P``) images are expanded through their palette (lossless);
- an alpha channel (``RGBA``, ``LA``, ``PA``, palette transparency) is dropped, as OpenCV's
  ``imread`` and BasicSR do: PNG stores colour unassociated with alpha, so the RGB values are
  defined under every pixel, and no background has to be guessed;
- 16-bit images (grey ``I;16`` and also 48/64-bit RGB(A) PNGs, which Pillow would silently
  truncate to 8 bits), 32-bit integer or float images, CMYK and other colour spaces are refused:
  an SR benchmark is 8-bit RGB, and a silent conversion would change the numbers.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lit_sisr.errors import MissingFileError, UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_EXPAND_TO_RGB = ("1", "L", "RGB", "RGBX")  # lossless to 8-bit RGB
_WITH_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")
_HIGH_BIT_DEPTH = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")
_DOWNLOAD_HINT = "set paths.data_dir or LIT_SISR_DATA, or fetch a dataset: python -m lit_sisr.data.download --help"


class ImageError(UserError, ValueError):
    """An image file that cannot be used; the message names the file."""


def _rawmode(im: Image.Image) -> str:
    """The decoder's raw mode before ``load`` ("RGB;16B" for a 48-bit PNG), or ""."""
    tile = getattr(im, "tile", None) or []
    return str(tile[0].args) if tile else ""


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    mode = im.mode
    if mode in _HIGH_BIT_DEPTH or ";16" in _rawmode(im):
        detail = mode if mode in _HIGH_BIT_DEPTH else f"16-bit {mode}"
        raise ImageError(f"{path}: {detail} image (16-bit or float); expected 8-bit RGB or grey "
                         "(convert it to 8 bits first)")
    if mode in _WITH_ALPHA or mode == "P":
        return im.convert("RGBA").convert("RGB")  # through the palette; alpha dropped
    if mode not in _EXPAND_TO_RGB:
        raise ImageError(f"{path}: {mode} image; expected 8-bit RGB or grey")
    return im if mode == "RGB" else im.convert("RGB")


@contextmanager
def decoding_errors(path: Path) -> Iterator[None]:
    """Turn what Pillow raises while opening or decoding ``path`` into one :class:`ImageError`
    naming the file (missing, too large, unreadable or truncated)."""
    try:
        yield
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: image too large to decode safely ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageError):
            raise
        raise ImageError(f"{path}: unreadable or truncated image ({' '.join(str(err).split())})") from None


def read_image(path: str | Path) -> torch.Tensor:
    """Decode ``path`` to a uint8 RGB tensor 3 x H x W."""
    path = Path(path)
    with decoding_errors(path), Image.open(path) as im:
        rgb = _to_rgb(im, path)  # checks the mode (and raw bit depth) before decoding pixels
        rgb.load()
        arr = np.asarray(rgb, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; errors if the folder is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"data folder not found: {folder} ({_DOWNLOAD_HINT})")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise MissingFileError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}; expected a folder of images")
    return files


def to_float(img: torch.Tensor) -> torch.Tensor:
    """uint8 levels -> float32 in [0, 1]."""
    return img.float().div_(255)
