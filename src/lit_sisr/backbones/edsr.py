"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPRW 2017), as in sanghyun-son/EDSR-PyTorch ``src/model/edsr.py``.

The BAM paper's Table 2 row is the large EDSR: 32 residual blocks x 256 features
(BAM ``train.py`` defaults ``--n_resblocks_edsr 32 --n_feats_edsr 256``). BAM is one module on
the body output, after the body's last conv and before the global residual add
(bam_reference.md section 2, row 1). Where the BAM code departs from EDSR without changing the
parameter count we follow EDSR: residual scaling 0.1 (BAM's ``train.py`` used 1) and the DIV2K
mean shift (commented out in the BAM code).
"""
from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones.common import MeanShift, Upsampler, conv


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``res_scale``, plus identity (keys ``body.0``, ``body.2``)."""

    def __init__(self, channels: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, 3), nn.ReLU(inplace=True), conv(channels, channels, 3))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


@register_backbone("edsr")
class EDSR(nn.Module):
    scales = (2, 3, 4)

    def __init__(
        self,
        scale: int,
        attention=None,
        n_resblocks: int = 32,
        n_feats: int = 256,
        res_scale: float = 0.1,
        mean_shift: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.mean_shift = mean_shift
        # Kept even when unused: the published model counts them (12 parameters each).
        self.sub_mean = MeanShift(sign=-1)
        self.add_mean = MeanShift(sign=+1)
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.body = nn.Sequential(
            *[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)], conv(n_feats, n_feats, 3)
        )
        self.att = as_factory(attention)(n_feats, native="none", reduction=16)
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv(n_feats, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean_shift:
            x = self.sub_mean(x)
        x = self.head(x)
        x = x + self.att(self.body(x))
        x = self.tail(x)
        return self.add_mean(x) if self.mean_shift else x
