"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks", ECCV 2018), as in yulunzhang/RCAN ``RCAN_TrainCode/code/model/rcan.py``.

Residual in residual (Sec. 3): 10 residual groups, each 20 residual channel attention blocks
(RCAB: conv-ReLU-conv-attention plus identity) and a conv, with a skip over every group and one
over the whole body; 64 features, EDSR-style sub-pixel upsampler. The attention site is the end
of every RCAB body, where RCAN has its channel attention (``ca``, r = 16); the BAM paper replaces
it there (dandingbudanding/BAM ``RCAN_ORI/RCAN.py`` ``RCAB_ori_blanced_attention``: 200 sites,
C = 64, r = 16; docs/architectures.md, RCAN). The BAM code comments out RCAN's DIV2K mean
shift, which does not change the parameter count; we follow RCAN and keep it.

Module names follow the authors' code (``head``, ``body.<g>.body.<b>.body.3.conv_du``, ``tail``,
``sub_mean``/``add_mean``). Authors' formats (``authors_formats``): yulunzhang/RCAN's files load
by name and run on [0, 255] (EDSR-PyTorch ``rgb_range`` 255, mean shift scaled to match:
``rgb_range=255``); the BAM repository's run on [0, 1] without the mean shift, and its BAM in
place of every ``ca`` names its children ``ca.relu1`` and ``sa.conv1``.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import AttentionFactory, as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import BAM_MODULE_RULES, BAM_REPOSITORY, AuthorsFormat, rename_keys
from lit_sisr.backbones.common import EDSRSkeleton, conv


class RCAB(nn.Module):
    """Residual channel attention block: x + att(conv(ReLU(conv(x)))) (RCAN has no residual scaling)."""

    def __init__(self, channels: int, attention: AttentionFactory, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels, 3),
            nn.ReLU(inplace=True),
            conv(channels, channels, 3),
            attention(channels, native="ca", reduction=reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """``n_resblocks`` RCABs and a conv, with a skip connection over the group."""

    def __init__(self, channels: int, n_resblocks: int, attention: AttentionFactory, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[RCAB(channels, attention, reduction) for _ in range(n_resblocks)], conv(channels, channels, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register_backbone("rcan")
class RCAN(EDSRSkeleton):
    """The EDSR skeleton with residual groups as blocks. RCAN's attention sites are inside its
    RCABs; the skeleton's site on the body output gets none (an identity, no parameters)."""

    scales = (2, 3, 4)
    authors_formats = {
        "official": AuthorsFormat("yulunzhang/RCAN", input_range=255, options={"rgb_range": 255, "mean_shift": True}),
        "bam": AuthorsFormat(
            BAM_REPOSITORY,
            rename_keys(*BAM_MODULE_RULES),
            options={"rgb_range": 1, "mean_shift": False},
            attentions=("bam",),
        ),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_resgroups=2, n_resblocks=2, n_feats=16)

    def __init__(
        self,
        scale: int,
        attention=None,
        n_resgroups: int = 10,
        n_resblocks: int = 20,
        n_feats: int = 64,
        reduction: int = 16,
        mean_shift: bool = True,
        rgb_range: float = 1.0,
    ) -> None:
        factory = as_factory(attention)
        super().__init__(
            scale,
            n_feats,
            n_blocks=n_resgroups,
            make_block=lambda: ResidualGroup(n_feats, n_resblocks, factory, reduction),
            attention="none",
            mean_shift=mean_shift,
            rgb_range=rgb_range,
        )
