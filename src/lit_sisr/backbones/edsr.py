"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPRW 2017), as in sanghyun-son/EDSR-PyTorch ``src/model/edsr.py``.

The BAM paper's Table 2 row is the large EDSR: 32 residual blocks x 256 features
(BAM ``train.py`` defaults ``--n_resblocks_edsr 32 --n_feats_edsr 256``). BAM is one module on
the body output, after the body's last conv and before the global residual add
(docs/architectures.md, EDSR). Where the BAM code departs from EDSR without changing the
parameter count we follow EDSR: residual scaling 0.1 (BAM's ``train.py`` used 1) and the DIV2K
mean shift (commented out in the BAM code).

Authors' formats (``authors_formats``): EDSR-PyTorch's files load by name and run on [0, 255]
(``rgb_range=255``); the BAM repository's run on [0, 1] without the mean shift and with
res_scale 1, and name the attention module ``attention`` (``ca.relu1``, ``sa.conv1``). Both
formats have the same keys for the baseline (no attention) network, so its files need the
format named (``load_authors_weights(..., format=...)``).
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import BAM_MODULE_RULES, BAM_REPOSITORY, AuthorsFormat, rename_keys
from lit_sisr.backbones.common import EDSRSkeleton, conv


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``res_scale``, plus identity (keys ``body.0``, ``body.2``)."""

    def __init__(self, channels: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, 3), nn.ReLU(inplace=True), conv(channels, channels, 3))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


@register_backbone("edsr")
class EDSR(EDSRSkeleton):
    """The EDSR skeleton with ``n_resblocks`` residual blocks; BAM on the body output."""

    scales = (2, 3, 4)
    authors_formats = {
        "official": AuthorsFormat(
            "sanghyun-son/EDSR-PyTorch",
            input_range=255,
            options={"rgb_range": 255, "res_scale": 0.1, "mean_shift": True},
        ),
        "bam": AuthorsFormat(
            BAM_REPOSITORY,
            rename_keys(*BAM_MODULE_RULES),
            options={"rgb_range": 1, "res_scale": 1.0, "mean_shift": False},
        ),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_resblocks=2, n_feats=16)

    def __init__(
        self,
        scale: int,
        attention=None,
        n_resblocks: int = 32,
        n_feats: int = 256,
        res_scale: float = 0.1,
        mean_shift: bool = True,
        rgb_range: float = 1.0,
    ) -> None:
        super().__init__(
            scale,
            n_feats,
            n_blocks=n_resblocks,
            make_block=lambda: ResBlock(n_feats, res_scale),
            attention=attention,
            mean_shift=mean_shift,
            rgb_range=rgb_range,
        )
        self.res_scale = res_scale
