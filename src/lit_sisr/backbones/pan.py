"""PAN (Zhao et al., "Efficient Image Super-Resolution Using Pixel Attention", ECCVW 2020), as in
zhaohengyuan1/PAN ``codes/models/archs/PAN_arch.py``; BAM variant: dandingbudanding/BAM
``PAN/pan.py`` ``PAN_Blanced_attention``.

Sec. 3 of the paper: a 3x3 head conv (40 features), 16 self-calibrated blocks with pixel
attention (SCPA), a 3x3 trunk conv with a long skip, then the U-PA reconstruction: per
upsampling stage a nearest-neighbour resize, a 3x3 conv to 24 features, pixel attention (PA)
and a second 3x3 conv; a final 3x3 conv to RGB is added to the bilinear upsampling of the input.

The attention sites are the PAs of the reconstruction stages (``att1``, and ``att2`` at x4):
that is where the BAM authors put BAM (r = 8; docs/architectures.md, PAN). The pixel
attention inside every SCPA block (``PAConv``) is part of the block's convolution, not an
attention site, and stays for every ``attention`` setting, as in the BAM code.

Parameter names are the authors' (``conv_first``, ``SCPA_trunk.{i}.PAConv.k2``, ``upconv1``,
``att1``, ``HRconv1``, ...), so the released checkpoints load without renaming; the BAM
repository's files differ only inside its BAM modules (``att1.ca.relu1``, ``att1.sa.conv1``).
As published, the network takes RGB in [0, 1] with no mean shift and does not clamp its output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lit_sisr.attention import as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import (
    BAM_MODULE_RULES,
    BAM_REPOSITORY,
    AuthorsFormat,
    rename_keys,
)
from lit_sisr.backbones.common import conv


class PAConv(nn.Module):
    """Pixel-attention convolution (paper Sec. 3.2, Fig. 2): k4(k3(x) * sigma(k2(x))).

    The 1x1 ``k2`` (with bias) gates the bias-free 3x3 ``k3`` pixel by pixel; ``k4`` is a
    bias-free 3x3 conv on the gated features.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.k2 = nn.Conv2d(channels, channels, 1)
        self.k3 = conv(channels, channels, kernel_size, bias=False)
        self.k4 = conv(channels, channels, kernel_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k4(self.k3(x) * torch.sigmoid(self.k2(x)))


class SCPA(nn.Module):
    """Self-calibrated block with pixel attention (paper Sec. 3.2, after SCNet, Liu et al. 2020).

    Two 1x1 convs split the input into halves; one half goes through a plain 3x3 conv (``k1``),
    the other through :class:`PAConv`; a 1x1 conv fuses the concatenation and the input is added.
    LeakyReLU(0.2) after every branch conv.
    """

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        branch = channels // reduction
        self.conv1_a = nn.Conv2d(channels, branch, 1, bias=False)
        self.conv1_b = nn.Conv2d(channels, branch, 1, bias=False)
        # A one-conv Sequential in the authors' code: its weight is ``k1.0.weight`` in their checkpoints.
        self.k1 = nn.Sequential(conv(branch, branch, 3, bias=False))
        self.PAConv = PAConv(branch)
        self.conv3 = nn.Conv2d(branch * reduction, channels, 1, bias=False)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = self.lrelu(self.k1(self.lrelu(self.conv1_a(x))))
        attended = self.lrelu(self.PAConv(self.lrelu(self.conv1_b(x))))
        return self.conv3(torch.cat([plain, attended], dim=1)) + x


def upsampling_factors(scale: int) -> tuple[int, ...]:
    """Resize factor of each U-PA stage: one stage of x2 or x3, two of x2 at x4 (as the authors)."""
    if scale & (scale - 1) == 0:
        return (2,) * int(math.log2(scale))
    return (scale,)


@register_backbone("pan")
class PAN(nn.Module):
    """PAN; defaults are the published model (nf 40, unf 24, nb 16; 261,403 params at x2/x3,
    272,419 at x4)."""

    scales = (2, 3, 4)
    authors_formats = {
        "official": AuthorsFormat("zhaohengyuan1/PAN"),
        "bam": AuthorsFormat(BAM_REPOSITORY, rename_keys(*BAM_MODULE_RULES)),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_feats=8, n_up_feats=16, n_blocks=2)
    #: LR reach of the bilinear upsampling of the input (a function, unseen by the tiler's conv hooks).
    functional_reach = 1

    def __init__(self, scale: int, attention=None, n_feats: int = 40, n_up_feats: int = 24, n_blocks: int = 16) -> None:
        super().__init__()
        self.scale = scale
        factory = as_factory(attention)
        self.conv_first = conv(3, n_feats, 3)
        self.SCPA_trunk = nn.Sequential(*(SCPA(n_feats) for _ in range(n_blocks)))
        self.trunk_conv = conv(n_feats, n_feats, 3)
        # U-PA stages as flat attributes upconv{i}/att{i}/HRconv{i}: the checkpoints' names.
        self.factors = upsampling_factors(scale)
        for stage, _ in enumerate(self.factors, start=1):
            in_feats = n_feats if stage == 1 else n_up_feats
            setattr(self, f"upconv{stage}", conv(in_feats, n_up_feats, 3))
            setattr(self, f"att{stage}", factory(n_up_feats, native="pa", reduction=8))
            setattr(self, f"HRconv{stage}", conv(n_up_feats, n_up_feats, 3))
        self.conv_last = conv(n_up_feats, 3, 3)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.SCPA_trunk(fea))
        for stage, factor in enumerate(self.factors, start=1):
            fea = getattr(self, f"upconv{stage}")(F.interpolate(fea, scale_factor=factor, mode="nearest"))
            fea = self.lrelu(getattr(self, f"att{stage}")(fea))
            fea = self.lrelu(getattr(self, f"HRconv{stage}")(fea))
        skip = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.conv_last(fea) + skip
