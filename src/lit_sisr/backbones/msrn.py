"""MSRN (Li et al., "Multi-scale Residual Network for Image Super-Resolution", ECCV 2018), as in
MIVRC/MSRN-PyTorch ``MSRN/Train/model/msrn.py``.

Eight multi-scale residual blocks (MSRB, paper Sec. 3.1) of 64 features; the head output and
every block output are concatenated and fused by a 1x1 conv (hierarchical feature fusion,
Sec. 3.2), then a 3x3 conv, the sub-pixel upsampler and a 3x3 conv to RGB (Sec. 3.3).
MSRN has no attention of its own. The BAM paper puts one BAM in every MSRB, after the 1x1
"confusion" conv and before the block's residual add (BAM ``MSRN/msrn.py``
``MSRB_blanced_attention``; docs/architectures.md, MSRN). The BAM code switches the
DIV2K mean shift off; we follow the original MSRN and keep it (no parameter changes).

Authors' formats (``authors_formats``): MSRN-PyTorch's names equal ours and its files run on
[0, 255] (``rgb_range=255``); the BAM repository's run on [0, 1] without the mean shift and name
each block's module ``attention`` (``ca.relu1``, ``sa.conv1``).
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import AttentionFactory, as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import BAM_MODULE_RULES, BAM_REPOSITORY, AuthorsFormat, rename_keys
from lit_sisr.backbones.common import MeanShiftedSR, conv, upsampling_tail


class MSRB(nn.Module):
    """Multi-scale residual block: two stages of parallel 3x3 / 5x5 convs whose outputs are
    concatenated and fed to both branches of the next stage, a 1x1 conv back to C channels
    ("confusion"), the attention site, and the identity."""

    def __init__(self, channels: int, attention: AttentionFactory) -> None:
        super().__init__()
        self.conv_3_1 = conv(channels, channels, 3)
        self.conv_5_1 = conv(channels, channels, 5)
        self.conv_3_2 = conv(2 * channels, 2 * channels, 3)
        self.conv_5_2 = conv(2 * channels, 2 * channels, 5)
        self.confusion = conv(4 * channels, channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.att = attention(channels, native="none", reduction=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = torch.cat([self.relu(self.conv_3_1(x)), self.relu(self.conv_5_1(x))], dim=1)
        s2 = torch.cat([self.relu(self.conv_3_2(s1)), self.relu(self.conv_5_2(s1))], dim=1)
        return self.att(self.confusion(s2)) + x


@register_backbone("msrn")
class MSRN(MeanShiftedSR):
    scales = (2, 3, 4)
    authors_formats = {
        "official": AuthorsFormat(
            "MIVRC/MSRN-PyTorch", input_range=255, options={"rgb_range": 255, "mean_shift": True}
        ),
        "bam": AuthorsFormat(
            BAM_REPOSITORY,
            rename_keys(*BAM_MODULE_RULES),
            options={"rgb_range": 1, "mean_shift": False},
            attentions=("bam",),
        ),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_feats=16, n_blocks=2)

    def __init__(
        self,
        scale: int,
        attention=None,
        n_feats: int = 64,
        n_blocks: int = 8,
        mean_shift: bool = True,
        rgb_range: float = 1.0,
    ) -> None:
        super().__init__(scale, mean_shift, rgb_range)
        factory = as_factory(attention)
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.body = nn.ModuleList(MSRB(n_feats, factory) for _ in range(n_blocks))
        self.tail = nn.Sequential(
            conv(n_feats * (n_blocks + 1), n_feats, 1),  # fuses all block outputs + head output
            conv(n_feats, n_feats, 3),
            *upsampling_tail(scale, n_feats),  # flat: keys tail.2.* and tail.3, as the authors'
        )

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        outs, h = [], x
        for block in self.body:
            h = block(h)
            outs.append(h)
        # Official order: block outputs first, head output last (the fusion conv's weights depend on it).
        return self.tail(torch.cat([*outs, x], dim=1))
