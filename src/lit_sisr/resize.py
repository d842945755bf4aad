"""MATLAB-exact bicubic resizing (``imresize(img, scale, 'bicubic')`` on uint8 images).

The SR literature makes its LR images with MATLAB, so every benchmark LR file and every
"Bicubic" table row depends on MATLAB's exact arithmetic: a cubic kernel with a = -0.5, widened by
the scale factor when shrinking (antialiasing), symmetric boundary handling, rows (H) resized
first, and -- the detail that makes it bit-exact -- the intermediate stored as uint8 (rounded half
away from zero and clipped) between the two 1-D passes. docs/protocol.md gives the
recipe; the golden test reproduces all 357 LR
files of Set5/Set14/B100 at x2/x3/x4 bit for bit.

PyTorch's antialiased bicubic (``F.interpolate(..., antialias=True)``) uses the same a = -0.5
kernel and the same widening; padding symmetrically before and cropping after makes its borders
match MATLAB's too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Half-width of the cubic kernel's support in input pixels (2), plus one pixel of margin.
_SUPPORT = 3


def _symmetric_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by ``pad`` on each side, MATLAB 'symmetric' style
    (the edge sample is repeated: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...)."""
    i = torch.arange(-pad, n + pad, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's uint8 cast: round half away from zero, then saturate to [0, 255]."""
    return torch.floor(x + 0.5).clamp_(0, 255)


def _resize_axis(x: torch.Tensor, out_len: int, dim: int, quantize: bool) -> torch.Tensor:
    in_len = x.shape[dim]
    if out_len == in_len:
        return x
    # Padding in input pixels: the kernel support, widened by the factor when shrinking.
    down = in_len / out_len
    pad = _SUPPORT * max(1, round(down)) if down > 1 else _SUPPORT
    x = x.index_select(dim, _symmetric_index(in_len, pad, x.device))
    size = list(x.shape[-2:])
    size[dim - x.dim()] = out_len * (in_len + 2 * pad) // in_len
    x = F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False, antialias=True)
    crop = (size[dim - x.dim()] - out_len) // 2
    x = x.narrow(dim, crop, out_len)
    return _round_uint8(x) if quantize else x


def imresize(img: torch.Tensor, scale: float, quantize: bool = True) -> torch.Tensor:
    """Resize N x C x H x W images holding 8-bit levels (0..255, any float or uint8 dtype) by
    ``scale`` like MATLAB ``imresize(img, scale, 'bicubic')``.

    Output size is ceil(H * scale) x ceil(W * scale) (MATLAB's rule). With ``quantize`` (MATLAB's
    behaviour on uint8 input) each 1-D pass is rounded to uint8 levels. Returns float32 levels.

    The padded length must be an exact multiple of the factor, so downscaling needs H and W to be
    multiples of 1/scale: modcrop first (see :func:`modcrop`).
    """
    if img.dim() != 4:
        raise ValueError(f"imresize expects N x C x H x W, got shape {tuple(img.shape)}")
    x = img.to(torch.float64)
    h, w = x.shape[-2:]
    out_h, out_w = _out_len(h, scale), _out_len(w, scale)
    if scale < 1:
        factor = round(1 / scale)
        if h % factor or w % factor:
            raise ValueError(f"imresize by 1/{factor} needs H and W divisible by {factor}, got {h}x{w}; modcrop first")
    x = _resize_axis(x, out_h, dim=2, quantize=quantize)
    x = _resize_axis(x, out_w, dim=3, quantize=quantize)
    return x.to(torch.float32)


def _out_len(n: int, scale: float) -> int:
    import math

    return int(math.ceil(n * scale - 1e-9))


def modcrop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Keep the top-left floor(H/s)*s x floor(W/s)*s region (MATLAB ``modcrop``)."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def bicubic_downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """LR = imresize(modcrop(HR, s), 1/s, 'bicubic'), the standard SR degradation."""
    return imresize(modcrop(hr, scale), 1.0 / scale)


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """imresize(LR, s, 'bicubic'): the parameter-free baseline of SR tables."""
    return imresize(lr, float(scale))
