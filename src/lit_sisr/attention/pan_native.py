"""PAN's pixel attention, the native module at PAN's attention sites.

``pa``: Zhao et al., "Efficient Image Super-Resolution Using Pixel Attention", ECCVW 2020,
Sec. 3.1 (Eq. 1-2); zhaohengyuan1/PAN ``codes/models/archs/PAN_arch.py`` ``PA``. A 1x1 conv
(with bias) and a sigmoid give a C x H x W map that multiplies the input, so unlike channel or
spatial attention every pixel of every channel has its own weight. The submodule is named
``conv`` as in the authors' code so their checkpoints (``att1.conv.weight``) load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import register_attention


@register_attention("pa")
class PixelAttention(nn.Module):
    """PAN ``PA``: x * sigma(conv1x1(x)); C^2 + C parameters (600 at C = 24)."""

    local = True

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))
