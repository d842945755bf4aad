"""DRLN (Anwar & Barnes, "Densely Residual Laplacian Super-Resolution", TPAMI 2020), as in
saeed-anwar/DRLN ``model/drln.py`` and ``model/ops.py``.

Cascading residual on the residual (Sec. 3): 20 dense residual Laplacian modules (DRLM: three
densely concatenated residual units of width C, 2C, 4C, a 1x1 fusion conv 8C -> C with ReLU and
the Laplacian attention ``la``), in six groups of 3, 3, 3, 3, 4 and 4. After every module the
features of its group so far are concatenated and fused by a 3x3 conv with ReLU; every group
and the whole body have a skip connection. 64 features; the single-scale upsampler has a ReLU
after each conv. The attention site is the end of every DRLM, where DRLN has its Laplacian
attention; the BAM paper replaces it there (dandingbudanding/BAM ``DRLN/drln.py``
``Block_BlancedAttention``: 20 sites, C = 64, r = 16; docs/architectures.md, DRLN).
Both the official DRLN and the BAM variant subtract the DIV2K mean ([0, 1] range) at the input
and add it back at the output.

Authors' formats (``authors_formats``): both repositories name modules ``b{k}`` (our
``blocks.{k-1}``), fusion convs ``c{k}.body`` (``fusions.{k-1}``), the attention ``b{k}.ca``
(``att``), and wrap convs in ``body``/``shifter``/``up`` containers that we drop. saeed-anwar/DRLN
ran its weights on [0, 255] images (``rgb_range=255``) with the [0, 1] mean in its mean-shift
convs (the values come with the file); the BAM repository on [0, 1], its BAM ``b{k}.ca`` holding
``ca.relu1`` and ``sa.conv1``.

One wiring detail follows the authors' code rather than the paper's figure: the second module of
the second group reads the group's input instead of the preceding fusion conv's output
(``b5 = self.b5(a1)``), so that fusion conv (``c4``) is computed by their code but unused. It is
kept, because the published weights and parameter counts contain it, but gets no gradient
(``group_input_blocks=[]`` gives the wiring of the figure).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lit_sisr.attention import AttentionFactory, as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import BAM_MODULE_RULES, BAM_REPOSITORY, AuthorsFormat, rename_keys
from lit_sisr.backbones.common import MeanShiftedSR, conv


class ResidualUnit(nn.Module):
    """``ops.ResidualBlock``: ReLU(x + conv(ReLU(conv(x))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, 3), nn.ReLU(inplace=True), conv(channels, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class DRLM(nn.Module):
    """Dense residual Laplacian module (``Block``): residual units on the growing concatenation
    [x], [x, r1], [x, r1, r2], a 1x1 conv + ReLU fusing all 8C channels to C, then attention.
    There is no skip connection around the module."""

    def __init__(self, channels: int, attention: AttentionFactory) -> None:
        super().__init__()
        self.r1 = ResidualUnit(channels)
        self.r2 = ResidualUnit(2 * channels)
        self.r3 = ResidualUnit(4 * channels)
        self.g = nn.Sequential(conv(8 * channels, channels, 1), nn.ReLU(inplace=True))
        self.att = attention(channels, native="la", reduction=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in (self.r1, self.r2, self.r3):
            x = torch.cat([x, unit(x)], dim=1)
        return self.att(self.g(x))


def relu_upsampler(scale: int, channels: int) -> nn.Sequential:
    """``ops._UpsampleBlock``: (conv to 4C, ReLU, PixelShuffle(2)) per factor 2, or conv to 9C,
    ReLU, PixelShuffle(3); unlike EDSR's upsampler it has a ReLU after every conv."""
    if scale in (2, 4, 8):
        factors = [2] * (scale.bit_length() - 1)
    elif scale == 3:
        factors = [3]
    else:
        raise ValueError(f"DRLN's upsampler supports scales 2, 3, 4 and 8, not {scale}")
    layers: list[nn.Module] = []
    for factor in factors:
        layers += [conv(channels, factor**2 * channels, 3), nn.ReLU(inplace=True), nn.PixelShuffle(factor)]
    return nn.Sequential(*layers)


#: Names shared by saeed-anwar/DRLN ``drln.py``/``ops.py`` and the BAM repository's ``DRLN/drln.py``.
DRLN_RULES = (
    (r"^b(\d+)\.", lambda m: f"blocks.{int(m.group(1)) - 1}."),
    (r"^(blocks\.\d+\.)ca\.", r"\1att."),
    (r"^c(\d+)\.body\.", lambda m: f"fusions.{int(m.group(1)) - 1}."),
    (r"\.g\.body\.", ".g."),
    (r"^(sub_mean|add_mean)\.shifter\.", r"\1."),
    (r"^upsample\.up\.body\.", "upsample."),
)


@register_backbone("drln")
class DRLN(MeanShiftedSR):
    scales = (2, 3, 4)
    authors_formats = {
        # The Laplacian attention's convs are ops.BasicBlock (``c{1..4}.body.0``).
        "official": AuthorsFormat(
            "saeed-anwar/DRLN",
            rename_keys(*DRLN_RULES, (r"(\.att\.c\d)\.body\.", r"\1.")),
            input_range=255,
            options={"rgb_range": 255},
        ),
        "bam": AuthorsFormat(
            BAM_REPOSITORY, rename_keys(*DRLN_RULES, *BAM_MODULE_RULES), options={"rgb_range": 1}, attentions=("bam",)
        ),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_feats=16, group_sizes=(2, 2), group_input_blocks=(3,))

    def __init__(
        self,
        scale: int,
        attention=None,
        n_feats: int = 64,
        group_sizes: Sequence[int] = (3, 3, 3, 3, 4, 4),
        group_input_blocks: Sequence[int] = (4,),
        mean_shift: bool = True,
        rgb_range: float = 1.0,
    ) -> None:
        super().__init__(scale, mean_shift, rgb_range)
        self.group_sizes = tuple(group_sizes)
        self.group_input_blocks = frozenset(group_input_blocks)
        group_starts = {sum(self.group_sizes[:g]) for g in range(len(self.group_sizes))}
        n_blocks = sum(self.group_sizes)
        misplaced = sorted(i for i in self.group_input_blocks if i in group_starts or not 0 <= i < n_blocks)
        if misplaced:
            raise ValueError(
                f"group_input_blocks {misplaced}: each must index a module (0..{n_blocks - 1}) "
                f"that is not the first of its group (first modules: {sorted(group_starts)})"
            )
        factory = as_factory(attention)
        self.head = conv(3, n_feats, 3)
        self.blocks = nn.ModuleList(DRLM(n_feats, factory) for _ in range(n_blocks))
        # Fusion conv k sees the previous group's output and the k+1 modules of its group so far.
        self.fusions = nn.ModuleList(
            nn.Sequential(conv((position + 2) * n_feats, n_feats, 3), nn.ReLU(inplace=True))
            for size in self.group_sizes
            for position in range(size)
        )
        self.upsample = relu_upsampler(scale, n_feats)
        self.tail = conv(n_feats, 3, 3)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        group_input = fused = x
        index = 0
        for size in self.group_sizes:
            features = fused  # the dense concatenation starts from the previous group's last fusion
            for position in range(size):
                reads_group_input = position == 0 or index in self.group_input_blocks
                block_output = self.blocks[index](group_input if reads_group_input else fused)
                features = torch.cat([features, block_output], dim=1)
                # The authors compute the fusion before a group-input-reading module and discard it.
                if index + 1 not in self.group_input_blocks:
                    fused = self.fusions[index](features)
                index += 1
            group_input = group_input + fused
        return self.tail(self.upsample(x + group_input))
