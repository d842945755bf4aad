"""Building blocks shared by several networks (EDSR-PyTorch ``model/common.py`` conventions).

Submodule layouts follow the authors' code so that official checkpoints load by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from lit_sisr.attention import AttentionFactory, as_factory

# DIV2K RGB mean used by EDSR-PyTorch and the networks derived from it (RCAN, MSRN, DRLN, ...).
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """'Same' convolution (EDSR-PyTorch ``default_conv``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """Frozen 1x1 conv adding (sign=+1) or subtracting (sign=-1) the dataset mean.

    A conv rather than a buffer because the published networks store it as one: its 12
    parameters are part of their parameter counts and checkpoints. ``rgb_range`` scales the
    mean to the range the network computes in (1, or 255 for the authors' EDSR-PyTorch weights).
    """

    def __init__(
        self,
        sign: int,
        rgb_mean: tuple[float, float, float] = DIV2K_MEAN,
        rgb_std: tuple[float, float, float] = (1.0, 1.0, 1.0),
        rgb_range: float = 1.0,
    ) -> None:
        super().__init__(3, 3, kernel_size=1)
        std = torch.tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


class Upsampler(nn.Sequential):
    """Sub-pixel upsampler: log2(s) x (conv to 4C, PixelShuffle(2)) for s = 2^n, or conv to 9C and
    PixelShuffle(3) for s = 3 (EDSR-PyTorch ``Upsampler``, no BN, no activation)."""

    def __init__(self, scale: int, channels: int, bias: bool = True) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv(channels, 4 * channels, 3, bias), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv(channels, 9 * channels, 3, bias), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"Upsampler supports scales 2^n and 3, not {scale}")
        super().__init__(*layers)


def upsampling_tail(scale: int, channels: int) -> nn.Sequential:
    """EDSR-PyTorch's tail: :class:`Upsampler` then a 3x3 conv to RGB (keys ``0.*``, ``1``)."""
    return nn.Sequential(Upsampler(scale, channels), conv(channels, 3, 3))


class MeanShiftedSR(nn.Module):
    """Base of the networks that run on mean-free images (EDSR-PyTorch convention): ``forward``
    subtracts the DIV2K mean (``sub_mean``), runs :meth:`reconstruct` and adds the mean back
    (``add_mean``); ``mean_shift=False`` skips both shifts.

    The two frozen :class:`MeanShift` convs are built first, as in the authors' constructors (their
    init draws from the RNG before being overwritten), and kept even when unused: the published
    models count them (12 parameters each).

    ``rgb_range`` is the pixel range the network computes in: inputs are [0, 1] and outputs [0, 1]
    whatever it is, but with ``rgb_range=255`` the input is multiplied by 255 before the mean shift
    and the output divided by 255 after it, as EDSR-PyTorch's ``--rgb_range 255`` (the authors'
    released weights of EDSR, MSRN, s-LWSR, OISR, RCAN and DRLN were trained that way; see
    docs/architectures.md). Networks with saturating attention are not homogeneous in their
    input, so their weights only reproduce in their own range.
    """

    def __init__(self, scale: int, mean_shift: bool = True, rgb_range: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.mean_shift = mean_shift
        self.rgb_range = float(rgb_range)
        self.sub_mean = MeanShift(sign=-1, rgb_range=rgb_range)
        self.add_mean = MeanShift(sign=+1, rgb_range=rgb_range)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The network proper: mean-free LR image -> mean-free SR image."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rgb_range != 1.0:
            x = x * self.rgb_range
        if self.mean_shift:
            x = self.sub_mean(x)
        x = self.reconstruct(x)
        if self.mean_shift:
            x = self.add_mean(x)
        return x / self.rgb_range if self.rgb_range != 1.0 else x


class EDSRSkeleton(MeanShiftedSR):
    """EDSR-PyTorch ``model/edsr.py`` skeleton, shared by EDSR, OISR and RCAN, which differ in the
    body's blocks: mean shift, head conv, body (``n_blocks`` x ``make_block()``, then a conv), an
    attention site on the body output, global skip from the head, :func:`upsampling_tail`.

    Keys ``head.0``, ``body.<i>``, ``body.<n_blocks>``, ``att``, ``tail.0``, ``tail.1`` as in the
    authors' code. ``attention`` builds the body-output site (native: none, r = 16; RCAN, whose
    sites are inside its blocks, passes ``"none"``). Modules are built in the authors' order, so a
    seeded initialisation draws the same weights.
    """

    def __init__(
        self,
        scale: int,
        n_feats: int,
        n_blocks: int,
        make_block: Callable[[], nn.Module],
        attention: "AttentionFactory | str | None" = None,
        mean_shift: bool = True,
        rgb_range: float = 1.0,
    ) -> None:
        super().__init__(scale, mean_shift, rgb_range)
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.body = nn.Sequential(*[make_block() for _ in range(n_blocks)], conv(n_feats, n_feats, 3))
        self.att = as_factory(attention)(n_feats, native="none", reduction=16)
        self.tail = upsampling_tail(scale, n_feats)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        x = x + self.att(self.body(x))
        return self.tail(x)
