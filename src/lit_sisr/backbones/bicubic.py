"""The parameter-free ``bicubic`` model: MATLAB-exact bicubic upscaling, the baseline row of
every SR table. Its output is already on 8-bit levels, like MATLAB's on uint8 input."""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.resize import bicubic_upscale


@register_backbone("bicubic")
class Bicubic(nn.Module):
    scales = (2, 3, 4)
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict()
    #: LR reach of MATLAB bicubic (4 taps: 2 LR pixels either side), unseen by the tiler's conv hooks.
    functional_reach = 2

    def __init__(self, scale: int, attention=None) -> None:
        super().__init__()
        if as_factory(attention).name not in ("none", "original"):
            raise ValueError("model 'bicubic' has no attention sites; use attention=none or original")
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = torch.floor(x.clamp(0, 1) * 255 + 0.5)
        return (bicubic_upscale(levels, self.scale) / 255).to(x.dtype)
