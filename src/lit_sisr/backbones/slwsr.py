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
``LWSR_blanced_attention``; bam_reference.md section 2, row 5). The BAM code switches the DIV2K
mean shift off; we follow the original s-LWSR and keep it (no parameter changes).
"""
from __future__ import annotations

import re

import torch
from torch import nn

from lit_sisr.attention import as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones.common import MeanShiftedSR, conv, upsampling_tail
from lit_sisr.backbones.edsr import ResBlock

LEVELS = 4  # encoder and decoder levels of lwsr.py


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
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_feats=16)

    def __init__(self, scale: int, attention=None, n_feats: int = 32, mean_shift: bool = True) -> None:
        super().__init__(scale, mean_shift)
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

    @staticmethod
    def convert_official_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sudo-Biao/s-LWSR checkpoints name blocks by position: ``feat{2..5}_{i}`` (encoder),
        ``feat6_{i}`` (bottleneck), ``conv1`` (information pool), ``feat{7..10}_{1,2}`` and
        ``conv{7..10}`` (decoder blocks 1-3)."""

        def rename(key: str) -> str:
            if m := re.match(r"feat(\d+)_(\d+)\.", key):
                level, block = int(m.group(1)), int(m.group(2)) - 1
                if level <= 1 + LEVELS:
                    new = f"encoder.{level - 2}.{block}."
                elif level == 2 + LEVELS:
                    new = f"bottleneck.{block}."
                else:
                    new = f"decoder.{level - 3 - LEVELS}.{block}."
                return new + key[m.end():]
            if key.startswith("conv1."):
                return "info_pool." + key[len("conv1."):]
            if m := re.match(r"conv(\d+)\.", key):
                return f"decoder.{int(m.group(1)) - 3 - LEVELS}.2." + key[m.end():]
            return key

        return {rename(k): v for k, v in state.items()}
