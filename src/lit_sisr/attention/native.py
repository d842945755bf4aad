"""Attention modules of the published networks that BAM replaces, and the identity.

``ca``: RCAN's channel attention (Zhang et al., ECCV 2018, Sec. 3.4; yulunzhang/RCAN ``CALayer``).
``cca``: IMDN's contrast-aware channel attention (Hui et al., ACM MM 2019, Sec. 3.2;
Zheng222/IMDN ``block.py`` ``CCALayer``): the same MLP fed with std + mean instead of the mean.
Submodule names follow the authors' code (``conv_du``) so their checkpoints map one to one.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import register_attention


@register_attention("none")
class NoAttention(nn.Identity):
    """No attention at this site (``attention=none``): an identity with no parameters."""

    local = True

    def __init__(self, channels: int) -> None:  # channels kept for the common signature
        super().__init__()


@register_attention("ca")
class ChannelAttentionRCAN(nn.Module):
    """RCAN ``CALayer``: sigma(W2 ReLU(W1 avgpool(x) + b1) + b2) * x, 1x1 convs with bias."""

    global_context = "RCAN channel attention on a global average pool"

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=True),
            nn.Sigmoid(),
        )

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.descriptor(x))


@register_attention("cca")
class ContrastChannelAttention(ChannelAttentionRCAN):
    """IMDN ``CCALayer``: the CA MLP on (per-channel standard deviation + mean)."""

    global_context = "IMDN contrast channel attention on the global mean and standard deviation"

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        return var.sqrt() + mean
