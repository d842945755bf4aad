"""The standard SR metric protocol (docs/protocol.md), as pure functions.

Per image: the SR output is clamped to [0, 1] and rounded to 8-bit levels; the HR image is
cropped top-left to the SR size; both are converted to Y of BT.601 exactly as MATLAB's
``rgb2ycbcr`` does (studio swing, kept in floating point); ``scale`` pixels are shaved from every
border; PSNR = 10 log10(255^2 / MSE) in float64; SSIM uses an 11x11 Gaussian window with
sigma 1.5 (K1 = 0.01, K2 = 0.03, L = 255) and is averaged over the valid region only. A
dataset's figure is the mean of its per-image figures.

PSNR is torchmetrics' ``peak_signal_noise_ratio`` with a per-image reduction (on float64 Y; its
float32 ln(10) moves the result by less than 1e-5 dB). SSIM is the MATLAB/skimage Gaussian SSIM
on the valid window, as kornia's ``metrics.ssim(padding="valid")`` computes it, with kornia's
Gaussian taps; the filtering is ours (:func:`gaussian_filter_valid`) for speed only: kornia's 2-D
float64 convolution takes 33 ms on a B100 image on one CPU thread (there is no fast float64
convolution kernel on CPU), the separable float64 filter here 6 ms, and the two agree to 1e-12
(``tests/test_metrics.py``). torchmetrics' SSIM does not match (it reflect-pads before filtering: 0.4938 instead of 0.4993
on B100 101085 x4, and Set5-B100 means 0.0002-0.0019 off the golden table). The Y conversion is
ours because kornia's ``rgb_to_ycbcr`` is full-range JPEG YCbCr, 1.32 dB off the MATLAB
convention (docs/protocol.md).

Parity with MATLAB (the golden table in docs/protocol.md, bicubic upscaling of the benchmark LR files;
``tests/test_metrics.py``): every cell of Set5/Set14/B100 x2/x3/x4 within 0.0005 dB / 0.00005.
"""

from __future__ import annotations

import kornia
import torch
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


# MATLAB's ssim.m (and kornia.metrics.ssim): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.
_SSIM_WINDOW, _SSIM_SIGMA, _SSIM_C1, _SSIM_C2 = 11, 1.5, (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2


def gaussian_filter_valid(images: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Correlate the last two axes with the separable window ``outer(taps, taps)``, valid
    region only (no padding: the output is ``len(taps) - 1`` smaller in each axis).

    Computed as a weighted sum of shifted slices, first along the width, then along the height:
    2 x len(taps) fused multiply-adds over the image, in the dtype of ``images`` (float64 here).
    """
    k = taps.numel()
    weights = taps.tolist()
    width = images.shape[-1] - k + 1
    rows = images[..., :width] * weights[0]
    for i in range(1, k):
        rows.add_(images[..., i : i + width], alpha=weights[i])
    height = images.shape[-2] - k + 1
    out = rows[..., :height, :] * weights[0]
    for i in range(1, k):
        out.add_(rows[..., i : i + height, :], alpha=weights[i])
    return out


def ssim_of_y(sr_y: torch.Tensor, hr_y: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian SSIM of prepared (shaved) Y images on 0..255, valid region only
    (N x 1 x H x W each; float64 recommended: the variances are differences of large moments)."""
    if sr_y.shape != hr_y.shape or sr_y.shape[1] != 1:
        raise ValueError(
            f"SSIM needs two N x 1 x H x W images of one shape, got {tuple(sr_y.shape)} and {tuple(hr_y.shape)}"
        )
    if min(sr_y.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels, got {tuple(sr_y.shape[-2:])}"
        )
    taps = kornia.filters.get_gaussian_kernel1d(_SSIM_WINDOW, _SSIM_SIGMA, dtype=sr_y.dtype).flatten()
    # Four filtered maps: the means, E[x^2 + y^2] (only sigma_x^2 + sigma_y^2 is needed) and E[xy].
    moments = torch.cat([sr_y, hr_y, sr_y * sr_y + hr_y * hr_y, sr_y * hr_y], dim=1)
    mu_x, mu_y, e_sq, e_xy = gaussian_filter_valid(moments, taps).unbind(1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    luminance_contrast = (2 * mu_xy + _SSIM_C1) * (2 * (e_xy - mu_xy) + _SSIM_C2)
    norm = (mu_xx + mu_yy + _SSIM_C1) * (e_sq - mu_xx - mu_yy + _SSIM_C2)
    return (luminance_contrast / norm).mean(dim=(-2, -1))
