"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks", ECCV 2018), as in yulunzhang/RCAN ``RCAN_TrainCode/code/model/rcan.py``.

Residual in residual (Sec. 3): 10 residual groups, each 20 residual channel attention blocks
(RCAB: conv-ReLU-conv-attention plus identity) and a conv, with a skip over every group and one
over the whole body; 64 features, EDSR-style sub-pixel upsampler. The attention site is the end
of every RCAB body, where RCAN has its channel attention (``ca``, r = 16); the BAM paper replaces
it there (dandingbudanding/BAM ``RCAN_ORI/RCAN.py`` ``RCAB_ori_blanced_attention``: 200 sites,
C = 64, r = 16; bam_reference.md section 2, row 9). The BAM code comments out RCAN's DIV2K mean
shift, which does not change the parameter count; we follow RCAN and keep it.

Module names follow the authors' code (``head``, ``body.<g>.body.<b>.body.3.conv_du``, ``tail``,
``sub_mean``/``add_mean``), so their checkpoints load without renaming. Those checkpoints were
trained on [0, 255] images (EDSR-PyTorch ``rgb_range`` 255, mean shift scaled to match): run
them on ``255 * x`` and divide the output by 255.
"""
from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import AttentionFactory, as_factory
from lit_sisr.backbones import register_backbone
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
    ) -> None:
        factory = as_factory(attention)
        super().__init__(
            scale,
            n_feats,
            n_blocks=n_resgroups,
            make_block=lambda: ResidualGroup(n_feats, n_resblocks, factory, reduction),
            attention="none",
            mean_shift=mean_shift,
        )
