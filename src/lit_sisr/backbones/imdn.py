"""IMDN (Hui et al., "Lightweight Image Super-Resolution with Information Multi-distillation
Network", ACM MM 2019), as in Zheng222/IMDN ``model/architecture.py`` and ``model/block.py``.

Six information multi-distillation blocks (IMDB), 64 features, distillation rate 0.25,
LeakyReLU(0.05). The attention site is the 64-channel concatenation of the four distilled
features, before the 1x1 fusion conv ``c5``: IMDN's own contrast-aware channel attention (CCA)
lives there, and the BAM paper puts BAM and every module of its ablation (Table 3) in its place
(docs/architectures.md, IMDN).

Authors' formats (``authors_formats``): both repositories feed [0, 1] RGB with no mean shift and
name the blocks ``IMDB1..IMDB6`` (our ``blocks.0..5``); the site's module is ``cca`` in
Zheng222/IMDN and ``attention`` in the BAM repository.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import AttentionFactory, as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import (
    BAM_MODULE_RULES,
    BAM_REPOSITORY,
    AuthorsFormat,
    rename_keys,
)
from lit_sisr.backbones.common import conv


class IMDB(nn.Module):
    """Information multi-distillation block (``IMDModule``)."""

    def __init__(self, channels: int, attention: AttentionFactory, distillation_rate: float = 0.25) -> None:
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = conv(channels, channels, 3)
        self.c2 = conv(self.remaining, channels, 3)
        self.c3 = conv(self.remaining, channels, 3)
        self.c4 = conv(self.remaining, self.distilled, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.att = attention(self.distilled * 4, native="cca", reduction=16)
        self.c5 = conv(self.distilled * 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        d4 = self.c4(r3)
        return self.c5(self.att(torch.cat([d1, d2, d3, d4], dim=1))) + x


# IMDB{k} -> blocks.{k-1}; CCA, also in the BAM repository's baseline IMDN, is our ``att``.
_RULES = ((r"^IMDB(\d+)\.", lambda m: f"blocks.{int(m.group(1)) - 1}."), (r"\.cca\.", ".att."))


@register_backbone("imdn")
class IMDN(nn.Module):
    scales = (2, 3, 4)
    authors_formats = {
        "official": AuthorsFormat("Zheng222/IMDN", rename_keys(*_RULES)),
        "bam": AuthorsFormat(BAM_REPOSITORY, rename_keys(*_RULES, *BAM_MODULE_RULES)),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_feats=16, n_blocks=2)

    def __init__(self, scale: int, attention=None, n_feats: int = 64, n_blocks: int = 6) -> None:
        super().__init__()
        self.scale = scale
        factory = as_factory(attention)
        self.fea_conv = conv(3, n_feats, 3)
        self.blocks = nn.ModuleList(IMDB(n_feats, factory) for _ in range(n_blocks))
        self.c = nn.Sequential(conv(n_feats * n_blocks, n_feats, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = conv(n_feats, n_feats, 3)
        self.upsampler = nn.Sequential(conv(n_feats, 3 * scale**2, 3), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs, h = [], fea
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)
