"""Evaluation protocols: how a test pair is made and how an SR output is scored.

``standard`` (docs/protocol.md, the SR literature's protocol): HR cropped top-left to a
multiple of the scale, LR from the set's stored MATLAB-bicubic files (or the MATLAB-exact
:mod:`lit_sisr.resize` when a set has none), SR rounded to 8-bit levels, MATLAB ``rgb2ycbcr`` Y,
``scale`` pixels shaved, Gaussian SSIM on the valid region (:mod:`lit_sisr.metrics`).

``bam_paper`` reproduces the BAM authors' evaluation (their ``prepare.py --eval`` and
``eval_allsize_allnet.py``; docs/protocol.md): the HR image is *resized* with PIL
bicubic to (W//s*s, H//s*s) instead of cropped, which resamples (and smooths) every B100 image;
LR is a PIL bicubic downscale of that resized HR (the stored LR files are not used); SR is x255 and
clamped but not rounded; Y = 16 + (64.738 R + 129.057 G + 25.064 B) / 256 on 0..255 values (their
typo of 65.738 for R); same shave and SSIM. It exists to measure how much of the paper's reported
BAM gain comes from the protocol: for the parameter-free ``bicubic`` model, ``bam_paper`` minus
``standard`` is +1.43/+0.46/+0.75 dB on B100 at x2/x3/x4 (``tests/test_protocols.py``), the pattern
of the paper's Table 2 "gains".

A protocol is chosen by name (``protocol=standard|bam_paper``) from :data:`PROTOCOLS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torchmetrics.functional.image import peak_signal_noise_ratio

from lit_sisr import metrics
from lit_sisr.resize import bicubic_downscale

# (LR uint8 from a stored file or None, HR uint8) -> (LR uint8, HR uint8 of exactly LR size * scale)
PairMaker = Callable[[torch.Tensor | None, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
# (SR float N x C x H x W in [0, 1] nominally, HR float in [0, 1], scale) -> (PSNR, SSIM) per image
Scorer = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Protocol:
    name: str
    make_pair: PairMaker
    score: Scorer
    # Whether the set's stored LR files are used (False: LR is always made from HR).
    uses_lr_files: bool
    # How LR is made from HR when no stored file is used (the results' ``lr_source``).
    made_lr: str = "bicubic"
    # One sentence for report headers: how pairs are made and how outputs are scored.
    description: str = ""


# -- standard ---------------------------------------------------------------------------------
def standard_pair(lr: torch.Tensor | None, hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stored LR (or the MATLAB-exact bicubic of HR's top-left modcrop) and HR cropped to LR * scale."""
    if lr is None:
        lr = bicubic_downscale(hr[None].float(), scale)[0].to(torch.uint8)
    return lr, hr[:, : lr.shape[-2] * scale, : lr.shape[-1] * scale].contiguous()


# -- bam_paper --------------------------------------------------------------------------------
# Their Y formula on 0..255 values, typo included (64.738 where BT.601 has 65.738).
_BAM_Y_WEIGHTS = (64.738, 129.057, 25.064)


def _pil_resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL bicubic resize of a uint8 C x H x W tensor to ``size`` = (W, H), as the BAM code does."""
    arr = img.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    out = np.asarray(pil.resize(size, Image.Resampling.BICUBIC), dtype=np.uint8)
    out = out[..., None] if out.ndim == 2 else out
    return torch.from_numpy(out.copy()).permute(2, 0, 1).contiguous()


def bam_paper_pair(lr: torch.Tensor | None, hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HR PIL-bicubic *resized* to a multiple of the scale, LR = its PIL-bicubic downscale.
    The stored LR file (if any) is ignored: the authors made LR this way for their eval files."""
    h, w = hr.shape[-2:]
    if min(h, w) < scale:
        raise ValueError(f"HR {h}x{w} is smaller than the scale {scale}")
    hr_resized = _pil_resize(hr, (w // scale * scale, h // scale * scale)) if (h % scale or w % scale) else hr
    return _pil_resize(hr_resized, (w // scale, h // scale)), hr_resized


def bam_paper_y(img: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W in [0, 255] -> N x 1 x H x W, the BAM authors' Y (float64)."""
    img = img.to(torch.float64)
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    w = torch.tensor(_BAM_Y_WEIGHTS, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return 16.0 + (img * w).sum(dim=1, keepdim=True) / 256.0


def bam_paper_score(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x255, clamp to [0, 255] without rounding, their Y, shave ``scale``, PSNR and Gaussian SSIM."""
    h, w = sr.shape[-2:]
    hr = hr[..., :h, :w]
    sr_y = metrics.shave(bam_paper_y((sr.to(torch.float64) * 255).clamp(0, 255)), scale)
    hr_y = metrics.shave(bam_paper_y(hr.to(torch.float64) * 255), scale)
    psnr = peak_signal_noise_ratio(sr_y, hr_y, data_range=255.0, dim=(1, 2, 3), reduction="none")
    return psnr, metrics.ssim_of_y(sr_y, hr_y)


PROTOCOLS: dict[str, Protocol] = {
    "standard": Protocol(
        "standard",
        standard_pair,
        metrics.psnr_ssim_y,
        uses_lr_files=True,
        made_lr="bicubic",
        description="MATLAB-bicubic LR; SR clamped to [0, 1] and rounded to 8 bit; Y of BT.601 "
        "(MATLAB rgb2ycbcr); `scale` pixels shaved from each border; PSNR/SSIM (Gaussian 11x11, "
        "sigma 1.5) per image, a set's figure is the mean over its images",
    ),
    "bam_paper": Protocol(
        "bam_paper",
        bam_paper_pair,
        bam_paper_score,
        uses_lr_files=False,
        made_lr="pil_bicubic",
        description="the BAM authors' evaluation: HR PIL-bicubic resized (not cropped) to a multiple "
        "of the scale, LR its PIL-bicubic downscale; SR x255 and clamped, not rounded; their Y "
        "(64.738 R typo); `scale` pixels shaved; PSNR/SSIM per image, mean over the set",
    ),
}


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol called ``name``; an unknown name is an error that lists the known ones."""
    if isinstance(name, Protocol):
        return name
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"protocol={name} is unknown; expected one of: {', '.join(PROTOCOLS)}") from None
