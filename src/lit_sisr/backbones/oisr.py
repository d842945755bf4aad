"""OISR (He et al., "ODE-inspired Network Design for Single Image Super-Resolution", CVPR 2019),
as in HolmesShuan/OISR-PyTorch (``LF-s``/``LF-m``/``RK3`` ``model/common.py`` and ``model/edsr.py``).

OISR keeps the EDSR skeleton (mean shift, head conv, body of residual blocks plus a conv, global
skip, pixel-shuffle upsampler, conv) and replaces EDSR's residual block by one step of an explicit
ODE solver whose right-hand side G = conv(PReLU(.)) is a different learned function at every
stage (the paper's "RK-block" and "LF-block"): Kutta's 3-stage Runge-Kutta step (RK3) or
leapfrog steps (LF). The solver coefficients are learnable scalars initialised to the scheme's values.

The BAM paper's "OISR-LF-s" and "OISR-LF" (dandingbudanding/BAM ``OISR/oisr_LF_s.py``,
``OISR/oisr_LF_m.py``, ``OISR/common.py``) are built from the **RK3** block, not the official
leapfrog one, with the LF-s (8 x 64) and LF-m (8 x 122) shapes; its x4 OISR-LF-s row is a 16-block
model (docs/architectures.md, OISR). The RK3 block is therefore the
default and ``block="lf"`` builds the official leapfrog networks. BAM is one module on the body
output, before the global skip, as coded and counted in Table 2 (the BAM paper's text says one
per block). The mean shift, commented out in the BAM code, follows OISR (on);
it does not change the parameter count.

Authors' formats (``authors_formats``; the names are ours in both): OISR-PyTorch's ``LF-s`` /
``LF-m`` files hold leapfrog blocks trained on [0, 255] (``block="lf"``, ``rgb_range=255``: the
[0, 1] input is multiplied by 255, the weights and their 255-scaled mean shift run as trained,
the output is divided by 255); the BAM repository's hold RK3 blocks run on
[0, 1] with the mean shift commented out of forward (``mean_shift=False``), although their
stored, unused mean shift is 255-scaled. Only its ``attention`` module is named differently.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import (
    BAM_MODULE_RULES,
    BAM_REPOSITORY,
    AuthorsFormat,
    rename_keys,
)
from lit_sisr.backbones.common import EDSRSkeleton, conv


class ODEBlock(nn.Module):
    """Stages G_i(y) = conv_i(PReLU_i(y)) and learnable solver coefficients ``scale1..scaleK``.

    Submodules are named ``conv{i}``, ``relu{i}`` and ``scale{i}`` (1-based) as in OISR-PyTorch,
    so the official checkpoints load by name. Subclasses set the initial coefficients and
    combine the stages in ``forward``.
    """

    n_stages: int
    coefficients: tuple[float, ...]

    def __init__(self, channels: int) -> None:
        super().__init__()
        for i in range(1, self.n_stages + 1):
            self.add_module(f"conv{i}", conv(channels, channels, 3))
            self.add_module(f"relu{i}", nn.PReLU(channels, 0.25))
        for i, value in enumerate(self.coefficients, start=1):
            # Shape (1,) like the authors' FloatTensor([value]), so checkpoints load unchanged.
            self.register_parameter(f"scale{i}", nn.Parameter(torch.tensor([float(value)])))

    def stage(self, i: int, y: torch.Tensor) -> torch.Tensor:
        """G_i(y), the i-th (1-based) evaluation of the learned right-hand side."""
        return getattr(self, f"conv{i}")(getattr(self, f"relu{i}")(y))

    def scale(self, i: int) -> torch.Tensor:
        return getattr(self, f"scale{i}")


class RungeKutta3Block(ODEBlock):
    """Kutta's third-order 3-stage Runge-Kutta step (paper's RK-block; OISR-PyTorch ``RK3`` ``ResBlock``).

    k1 = G1(y), k2 = G2(y + 1/2 k1), k3 = G3(y + 2 k2 - k1), y' = y + 1/6 (k1 + 4 k2 + k3),
    with the five coefficients 1/2, 2, -1, 4, 1/6 learnable (``scale1..scale5``).
    """

    n_stages = 3
    coefficients = (0.5, 2.0, -1.0, 4.0, 1 / 6)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        k1 = self.stage(1, y)
        k2 = self.stage(2, y + self.scale(1) * k1)
        k3 = self.stage(3, y + self.scale(2) * k2 + self.scale(3) * k1)
        return y + self.scale(5) * (k3 + self.scale(4) * k2 + k1)


class LeapfrogBlock(ODEBlock):
    """Four leapfrog steps y_{n+1} = y_{n-1} + 2h G_n(y_n) (paper's LF-block; OISR-PyTorch ``LF-s``
    ``ResBlock``), started from y_{-1} = 0, y_0 = x; each 2h is a learnable scalar initialised to 2.
    """

    n_stages = 4
    coefficients = (2.0, 2.0, 2.0, 2.0)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        previous, current = torch.zeros_like(y), y
        for i in range(1, self.n_stages + 1):
            previous, current = current, previous + self.scale(i) * self.stage(i, current)
        return current


BLOCKS: dict[str, type[ODEBlock]] = {"rk3": RungeKutta3Block, "lf": LeapfrogBlock}


class OISR(EDSRSkeleton):
    """EDSR skeleton with ODE blocks; submodule names follow OISR-PyTorch ``model/edsr.py``.

    ``rgb_range`` is the pixel range the network computes in (see :class:`MeanShiftedSR`):
    255 for OISR-PyTorch's weights, 1 (default) otherwise.
    """

    scales = (2, 3, 4)
    authors_formats = {
        "official": AuthorsFormat(
            "HolmesShuan/OISR-PyTorch", input_range=255, options={"block": "lf", "rgb_range": 255}
        ),
        "bam": AuthorsFormat(BAM_REPOSITORY, rename_keys(*BAM_MODULE_RULES), options={"mean_shift": False}),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_blocks=1, n_feats=16)

    def __init__(
        self,
        scale: int,
        attention=None,
        n_blocks: int = 8,
        n_feats: int = 64,
        block: str = "rk3",
        mean_shift: bool = True,
        rgb_range: float = 1.0,
    ) -> None:
        if block not in BLOCKS:
            raise ValueError(f"OISR block {block!r} is not one of {sorted(BLOCKS)}")
        super().__init__(
            scale,
            n_feats,
            n_blocks=n_blocks,
            make_block=lambda: BLOCKS[block](n_feats),
            attention=attention,
            mean_shift=mean_shift,
            rgb_range=rgb_range,
        )


@register_backbone("oisr_lf_s")
class OISRLFs(OISR):
    """OISR-LF-s shape: 8 blocks x 64 features (the BAM paper's x4 row used ``n_blocks=16``)."""

    #: Options that reproduce a paper row where it differs from our defaults, by scale.
    paper_overrides = {4: {"n_blocks": 16}}

    def __init__(self, scale: int, attention=None, n_blocks: int = 8, n_feats: int = 64, **options) -> None:
        super().__init__(scale, attention, n_blocks=n_blocks, n_feats=n_feats, **options)


@register_backbone("oisr_lf")
class OISRLF(OISR):
    """OISR-LF (LF-m) shape: 8 blocks x 122 features."""

    def __init__(self, scale: int, attention=None, n_blocks: int = 8, n_feats: int = 122, **options) -> None:
        super().__init__(scale, attention, n_blocks=n_blocks, n_feats=n_feats, **options)
