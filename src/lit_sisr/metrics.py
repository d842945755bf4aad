"""The standard SR metric protocol (``shared/spec/protocol.md``), as pure functions.

Per image: the SR output is clamped to [0, 1] and rounded to 8-bit levels; the HR image is
cropped top-left to the SR size; both are converted to Y of BT.601 exactly as MATLAB's
``rgb2ycbcr`` does (studio swing, kept in floating point); ``scale`` pixels are shaved from every
border; PSNR = 10 log10(255^2 / MSE) in float64; SSIM uses an 11x11 Gaussian window with
sigma 1.5 (K1 = 0.01, K2 = 0.03, L = 255) and is averaged over the valid region only. A
dataset's figure is the mean of its per-image figures.

PSNR is torchmetrics' ``peak_signal_noise_ratio`` with a per-image reduction (on float64 Y; its
float32 ln(10) moves the result by less than 1e-5 dB). SSIM is kornia's
``metrics.ssim(padding="valid")``, which equals the MATLAB/skimage Gaussian SSIM on the valid
window; torchmetrics' SSIM does not (it reflect-pads before filtering: 0.4938 instead of 0.4993
on B100 101085 x4, and Set5-B100 means 0.0002-0.0019 off the golden table). The Y conversion is
ours because kornia's ``rgb_to_ycbcr`` is full-range JPEG YCbCr, 1.32 dB off the MATLAB
convention (ecosystem_notes.md section 5.1).

Parity with MATLAB (the golden table in protocol.md, bicubic upscaling of the shared LR files;
``tests/test_metrics.py``): every cell of Set5/Set14/B100 x2/x3/x4 within 0.0005 dB / 0.00005.
"""
from __future__ import annotations

import torch
import kornia
from torchmetrics.functional.image import peak_signal_noise_ratio

# MATLAB rgb2ycbcr for double input in [0, 1]: Y = 16 + 65.481 R + 128.553 G + 24.966 B (0..255 scale).
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the nearest of the 256 8-bit levels (saving as PNG would)."""
    return torch.round(img.clamp(0, 1) * 255) / 255


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W RGB in [0, 1] -> N x 1 x H x W Y in [16, 235] (float64). Grey (1 channel)
    input is treated as R = G = B."""
    img = img.to(torch.float64)
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    w = torch.tensor(_Y_WEIGHTS, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return 16.0 + (img * w).sum(dim=1, keepdim=True)


def shave(img: torch.Tensor, border: int) -> torch.Tensor:
    """Drop ``border`` pixels from every side."""
    if border <= 0:
        return img
    return img[..., border:-border, border:-border]


def prepare_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the protocol up to the metric: quantise SR, crop HR to SR's size, Y, shave."""
    if sr.shape[0] != hr.shape[0] or sr.shape[1] != hr.shape[1]:
        raise ValueError(f"SR {tuple(sr.shape)} and HR {tuple(hr.shape)} differ in batch or channels")
    h, w = sr.shape[-2:]
    if hr.shape[-2] < h or hr.shape[-1] < w:
        raise ValueError(f"HR {tuple(hr.shape[-2:])} is smaller than SR {(h, w)}")
    hr = hr[..., :h, :w]
    return shave(rgb_to_y(quantize(sr)), scale), shave(rgb_to_y(hr), scale)


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Per-image Y-PSNR in dB (shape N)."""
    sr_y, hr_y = prepare_y(sr, hr, scale)
    return peak_signal_noise_ratio(sr_y, hr_y, data_range=255.0, dim=(1, 2, 3), reduction="none")


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Per-image Y-SSIM (shape N), Gaussian window 11x11, sigma 1.5, valid region only."""
    sr_y, hr_y = prepare_y(sr, hr, scale)
    return ssim_of_y(sr_y, hr_y)


def psnr_ssim_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both per-image figures from one preparation (what evaluation loops call)."""
    sr_y, hr_y = prepare_y(sr, hr, scale)
    psnr = peak_signal_noise_ratio(sr_y, hr_y, data_range=255.0, dim=(1, 2, 3), reduction="none")
    return psnr, ssim_of_y(sr_y, hr_y)


def ssim_of_y(sr_y: torch.Tensor, hr_y: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian SSIM of prepared (shaved) Y images on 0..255, valid region only."""
    # kornia fixes sigma = 1.5, K1 = 0.01, K2 = 0.03 for an 11x11 window, as MATLAB's ssim.m.
    ssim_map = kornia.metrics.ssim(sr_y, hr_y, window_size=11, max_val=255.0, padding="valid")
    return ssim_map.mean(dim=(1, 2, 3))
