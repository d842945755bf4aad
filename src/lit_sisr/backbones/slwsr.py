"""s-LWSR (Li et al., "s-LWSR: Super Lightweight Super-Resolution Network", IEEE TIP 2020), as in
Sudo-Biao/s-LWSR ``Train/code/model/lwsr.py``; ``slwsr32`` is the 32-feature model of the BAM
paper's Table 2.

A U-Net-like stack of residual blocks on LR features. Encoder: four levels of three ResBlocks;
each level's input is the sum of the previous level's first and third block outputs; then two
bottleneck ResBlocks. The "information pool" is a bias-free 1x1 conv over six encoder features.
Decoder: four levels, each fusing [previous output, (mirrored encoder level + pool) / 2] with a
1x1 conv and running three ResBlocks. A global skip from the head, then the sub-pixel
upsampler and a conv to RGB. s-LWSR has no attention of its own. The BAM paper puts one BAM
on the last decoder output, before the global skip ``+ x1`` (BAM ``s_LWSR/s_LWSR.py``
``LWSR_blanced_attention``; docs/architectures.md, s-LWSR). The BAM code switches the DIV2K
mean shift off; we follow the original s-LWSR and keep it (no parameter changes).

Authors' formats (``authors_formats``): both repositories name blocks by position (``feat{2..5}_{i}``
encoder, ``feat6_{i}`` bottleneck, ``conv1`` information pool, ``feat{7..10}_{1,2}`` and
``conv{7..10}`` decoder blocks 1-3). Sudo-Biao/s-LWSR's files run on [0, 255] (``rgb_range=255``);
the BAM repository's on [0, 1] without the mean shift, with the module ``attention``
(``ca.relu1``, ``sa.conv1``).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from lit_sisr.attention import as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import BAM_MODULE_RULES, BAM_REPOSITORY, AuthorsFormat, rename_keys
from lit_sisr.backbones.common import MeanShiftedSR, conv, upsampling_tail
from lit_sisr.backbones.edsr import ResBlock

LEVELS = 4  # encoder and decoder levels of lwsr.py


def _block_name(m: re.Match[str]) -> str:
    """``feat{level}_{i}.`` of lwsr.py: encoder levels 2..5, bottleneck 6, decoder levels 7..10."""
    level, block = int(m.group(1)), int(m.group(2)) - 1
    if level <= 1 + LEVELS:
        return f"encoder.{level - 2}.{block}."
    if level == 2 + LEVELS:
        return f"bottleneck.{block}."
    return f"decoder.{level - 3 - LEVELS}.{block}."


#: Sudo-Biao/s-LWSR ``lwsr.py`` names (also the BAM repository's ``s_LWSR.py``).
LWSR_RULES = (
    (r"^feat(\d+)_(\d+)\.", _block_name),
    (r"^conv1\.", "info_pool."),
    (r"^conv(\d+)\.", lambda m: f"decoder.{int(m.group(1)) - 3 - LEVELS}.2."),
)


class FusionResBlock(ResBlock):
    """``ResBlock2``: a 1x1 conv (with bias) fuses the 2C-channel concatenation to C channels,
    then a residual block whose identity is the fused tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, res_scale=1.0)
        self.conv = conv(2 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.conv(x))


@register_backbone("slwsr32")
class SLWSR(MeanShiftedSR):
    scales = (2, 3, 4)
    authors_formats = {
        "official": AuthorsFormat(
            "Sudo-Biao/s-LWSR",
            rename_keys(*LWSR_RULES),
            input_range=255,
            options={"rgb_range": 255, "mean_shift": True},
        ),
        "bam": AuthorsFormat(
            BAM_REPOSITORY,
            rename_keys(*LWSR_RULES, *BAM_MODULE_RULES),
            options={"rgb_range": 1, "mean_shift": False},
            attentions=("bam",),
        ),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_feats=16)

    def __init__(
        self, scale: int, attention=None, n_feats: int = 32, mean_shift: bool = True, rgb_range: float = 1.0
    ) -> None:
        super().__init__(scale, mean_shift, rgb_range)
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.encoder = nn.ModuleList(
            nn.Sequential(*(ResBlock(n_feats, res_scale=1.0) for _ in range(3))) for _ in range(LEVELS)
        )
        self.bottleneck = nn.Sequential(ResBlock(n_feats, res_scale=1.0), ResBlock(n_feats, res_scale=1.0))
        # Pool inputs: head output, first block of encoder levels 2..4, both bottleneck blocks.
        self.info_pool = conv((LEVELS + 2) * n_feats, n_feats, 1, bias=False)
        self.decoder = nn.ModuleList(
            nn.Sequential(FusionResBlock(n_feats), *(ResBlock(n_feats, res_scale=1.0) for _ in range(2)))
            for _ in range(LEVELS)
        )
        self.att = as_factory(attention)(n_feats, native="none", reduction=16)
        self.tail = upsampling_tail(scale, n_feats)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.head(x)
        pooled, skips, h = [x1], [], x1
        for level, blocks in enumerate(self.encoder):
            first = blocks[0](h)
            last = blocks[2](blocks[1](first))
            if level > 0:  # lwsr.py pools the head output instead of level 1's first block
                pooled.append(first)
            skips.append(last)
            h = first + last
        b1 = self.bottleneck[0](h)
        b2 = self.bottleneck[1](b1)
        pool = self.info_pool(torch.cat([*pooled, b1, b2], dim=1))
        h = b2
        for blocks, skip in zip(self.decoder, reversed(skips)):
            h = blocks(torch.cat([h, 0.5 * skip + 0.5 * pool], dim=1))
        return self.tail(self.att(h) + x1)
