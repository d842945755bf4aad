"""Building blocks shared by several networks (EDSR-PyTorch ``model/common.py`` conventions).

Submodule layouts follow the authors' code so that official checkpoints load by name.
"""
from __future__ import annotations

import math

import torch
from torch import nn

# DIV2K RGB mean used by EDSR-PyTorch and the networks derived from it (RCAN, MSRN, DRLN, ...).
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """'Same' convolution (EDSR-PyTorch ``default_conv``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """Frozen 1x1 conv adding (sign=+1) or subtracting (sign=-1) the dataset mean.

    A conv rather than a buffer because the published networks store it as one: its 12
    parameters are part of their parameter counts and checkpoints. ``rgb_range`` is 1 here
    because every backbone works on [0, 1] images.
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
