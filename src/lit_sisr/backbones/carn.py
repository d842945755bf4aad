"""CARN and CARN-M (Ahn et al., "Fast, Accurate, and Lightweight Super-Resolution with Cascading
Residual Network", ECCV 2018), as in nmhkahn/CARN-pytorch ``carn/model/{carn,carn_m,ops}.py``.

Both networks are a two-level cascade (Sec. 3.1-3.2): an entry conv, three cascading blocks whose
outputs are fused by 1x1 conv + ReLU layers ``c1..c3`` (global cascade), and inside each block three
residual units fused the same way (local cascade). CARN-M (Sec. 3.3) swaps the residual unit for
the efficient one (grouped 3x3 convs + 1x1) and re-uses ONE unit three times per block (recursion).

Both are the official *multi-scale* model: the x2, x3 and x4 upsamplers all exist in every model
(the BAM paper's parameter counts include them) and ``scale`` picks the one that runs. The BAM
code (dandingbudanding/BAM ``CARN/carn.py``, ``CARN/carn_m.py``) puts one BAM after each of the
three OUTER fusion convs (docs/architectures.md, CARN); the block-internal fusions get none.
Its CARN-M hard-codes ``group=1`` (1,161,307 parameters), which is our default; the released
CARN-M is ``group=4`` (414,811).

Authors' formats (``authors_formats``): both repositories feed [0, 1] RGB and store the mean
shift as ``sub_mean.shifter``; the BAM repository's attention classes wrap each outer fusion as
``c{i}.0`` (the fusion) + ``c{i}.1`` (BAM), which are our ``c{i}`` and ``c{i}.att``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from lit_sisr.attention import as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import (
    BAM_MODULE_RULES,
    BAM_REPOSITORY,
    AuthorsFormat,
    rename_keys,
)
from lit_sisr.backbones.common import DIV2K_MEAN, MeanShift

# CARN's MeanShift: [0, 1] means, no std division. Its numbers are the DIV2K mean of EDSR.
CARN_MEAN = DIV2K_MEAN

OFFICIAL_REPOSITORY = "nmhkahn/CARN-pytorch"
# Both repositories wrap the mean-shift conv: ``sub_mean.shifter.weight`` -> ``sub_mean.weight``.
_MEAN_SHIFT_RULE = (r"^(sub_mean|add_mean)\.shifter\.", r"\1.")
convert_official = rename_keys(_MEAN_SHIFT_RULE)
convert_bam = rename_keys(
    _MEAN_SHIFT_RULE,
    (r"^c(\d+)\.0\.", r"c\1."),  # the outer fusion (BasicBlock) ...
    (r"^c(\d+)\.1\.", r"c\1.att."),  # ... and the BAM after it
    *BAM_MODULE_RULES,
)


def _conv(in_channels: int, out_channels: int, kernel_size: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups)


class ResidualUnit(nn.Module):
    """CARN's residual unit: ReLU(body(x) + x) (``ops.ResidualBlock``, keys ``body.0``, ``body.2``).

    ``efficient=True`` is CARN-M's efficient residual unit (``ops.EResidualBlock``, Sec. 3.3): the
    two 3x3 convs become ``group``-wise convs followed by a ReLU and a 1x1 conv that mixes the groups.
    """

    def __init__(self, channels: int, group: int = 1, efficient: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            _conv(channels, channels, 3, group),
            nn.ReLU(inplace=True),
            _conv(channels, channels, 3, group),
        ]
        if efficient:
            layers += [nn.ReLU(inplace=True), _conv(channels, channels, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class Fusion(nn.Module):
    """Cascade fusion: 1x1 conv + ReLU on the concatenation (``ops.BasicBlock``, key ``body.0``),
    then the attention at this site, if any (the BAM code's ``Sequential(BasicBlock, BAM)``)."""

    def __init__(self, in_channels: int, channels: int, attention: nn.Module | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(in_channels, channels, 1), nn.ReLU(inplace=True))
        self.att = attention if attention is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.att(self.body(x))


class Cascade(nn.Module):
    """Cascading connections (Sec. 3.1, Fig. 2): step i runs unit ``b_i`` on the previous output,
    appends it to the running concatenation [x, b_1, ..., b_i] and fuses that with ``c_i``.

    ``shared_unit=True`` registers a single unit ``b1`` and runs it at every step (CARN-M's
    recursive block); the fusions ``c_i`` are never shared. ``attention`` builds the module
    that follows each fusion (none inside blocks).
    """

    def __init__(
        self,
        make_unit: Callable[[], nn.Module],
        channels: int,
        steps: int = 3,
        shared_unit: bool = False,
        attention: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.unit_names = tuple("b1" if shared_unit else f"b{i}" for i in range(1, steps + 1))
        for name in dict.fromkeys(self.unit_names):
            self.add_module(name, make_unit())
        for i in range(1, steps + 1):
            att = attention(channels) if attention is not None else None
            self.add_module(f"c{i}", Fusion((i + 1) * channels, channels, att))

    def cascade(self, x: torch.Tensor) -> torch.Tensor:
        concat = out = x
        for i, unit_name in enumerate(self.unit_names, 1):
            concat = torch.cat([concat, getattr(self, unit_name)(out)], dim=1)
            out = getattr(self, f"c{i}")(concat)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cascade(x)


class SubPixelUpsampler(nn.Module):
    """CARN's upsampler (``ops._UpsampleBlock``): (grouped conv to s^2 C, ReLU, PixelShuffle(s)),
    once for s = 3, twice with s = 2 for x4. Unlike EDSR's it has a ReLU and honours ``group``."""

    def __init__(self, channels: int, scale: int, group: int = 1) -> None:
        super().__init__()
        factors = {2: (2,), 3: (3,), 4: (2, 2)}[scale]
        layers: list[nn.Module] = []
        for f in factors:
            layers += [_conv(channels, f * f * channels, 3, group), nn.ReLU(inplace=True), nn.PixelShuffle(f)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register_backbone("carn")
class CARN(Cascade):
    """CARN (``carn.py`` ``Net``): 3 cascading blocks of 3 residual units, 64 features.

    The network itself is the global cascade (keys ``b1..b3``, ``c1..c3`` at top level, as in the
    official checkpoints). ``multi_scale=True`` (default, the released and the BAM model) builds
    ``upsample.up2/up3/up4`` and runs ``up{scale}``; the upsamplers of the other scales are kept
    (they are part of the parameter count and of the checkpoints) but frozen, since this model never
    runs them: no optimiser state for dead weights and no unused parameters under DDP.
    ``multi_scale=False`` is the official single-scale variant (``upsample.up``).
    ``group`` only groups the upsampler convs in CARN, as in the official code.
    """

    scales = (2, 3, 4)
    authors_formats = {
        "official": AuthorsFormat(OFFICIAL_REPOSITORY, convert_official),
        "bam": AuthorsFormat(BAM_REPOSITORY, convert_bam),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_feats=16)
    # CARN-M: efficient residual units, one per block re-used at each of its three steps.
    mobile = False

    def __init__(
        self,
        scale: int,
        attention=None,
        n_feats: int = 64,
        group: int = 1,
        multi_scale: bool = True,
    ) -> None:
        factory = as_factory(attention)
        unit_group = group if self.mobile else 1

        def make_block() -> Cascade:
            return Cascade(
                lambda: ResidualUnit(n_feats, unit_group, efficient=self.mobile),
                n_feats,
                shared_unit=self.mobile,
            )

        super().__init__(
            make_block,
            n_feats,
            attention=lambda channels: factory(channels, native="none", reduction=16),
        )
        self.scale = scale
        self.sub_mean = MeanShift(sign=-1, rgb_mean=CARN_MEAN)
        self.add_mean = MeanShift(sign=+1, rgb_mean=CARN_MEAN)
        self.entry = _conv(3, n_feats, 3)
        built = self.scales if multi_scale else (scale,)
        self.upsample = nn.ModuleDict(
            {self._upsampler_key(s, multi_scale): SubPixelUpsampler(n_feats, s, group) for s in built}
        )
        self.upsampler_key = self._upsampler_key(scale, multi_scale)
        for key, upsampler in self.upsample.items():
            upsampler.requires_grad_(key == self.upsampler_key)
        self.exit = _conv(n_feats, 3, 3)

    @staticmethod
    def _upsampler_key(scale: int, multi_scale: bool) -> str:
        return f"up{scale}" if multi_scale else "up"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(self.sub_mean(x))
        x = self.upsample[self.upsampler_key](self.cascade(x))
        return self.add_mean(self.exit(x))


@register_backbone("carn_m")
class CARNM(CARN):
    """CARN-M (``carn_m.py`` ``Net``): efficient residual units, one re-used 3x per block.

    ``group=1`` is the BAM paper's CARN-M (the BAM code hard-codes it); ``group=4`` is the official
    CARN-M of the released ``carn_m.pth`` (its README trains with ``--group 4``), hence the
    official format's ``group=4``.
    """

    mobile = True
    authors_formats = {
        "official": AuthorsFormat(OFFICIAL_REPOSITORY, convert_official, options={"group": 4}),
        "bam": AuthorsFormat(BAM_REPOSITORY, convert_bam, options={"group": 1}),
    }
    #: Why our FLOPs differ from the paper's more than its counting convention explains.
    flops_note = "paper counts the re-used residual unit once per block, we count every call"
