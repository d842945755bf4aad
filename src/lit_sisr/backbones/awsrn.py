"""AWSRN (Wang et al., "Lightweight Image Super-Resolution with Adaptive Weighted Learning
Network", arXiv:1904.02358, 2019), as in ChaofWang/AWSRN ``code/src/model/awsrn.py``; BAM variant:
dandingbudanding/BAM ``AWSRN/awsrn.py`` ``AWSRN_blanced_attention``.

The full AWSRN (not -S/-M): a 3x3 head conv to 32 features, 4 local fusion blocks (LFB), each of
4 adaptive weighted residual units (AWRU: conv 32->128, ReLU, conv 128->32, with learnable
scalars on the residual and on the identity) whose outputs are concatenated and fused by a
3x3 conv, again with learnable residual/identity scalars; then the adaptive weighted
multi-scale reconstruction (AWMS: 3/5/7/9 convs straight to scale^2 x RGB, pixel shuffle,
learnable weights) plus a 3x3 conv + pixel-shuffle skip branch from the input. Every conv is
weight-normalised (``weight_g`` counts as a parameter).

The network has no attention of its own. The BAM authors put one BAM (r = 8) on the body
output, before the AWMS tail (docs/architectures.md, AWSRN). Their BAM variant drops
AWSRN's input normalisation; we keep it (it has no parameters): the official
(x - 255 mean) / 127.5 on [0, 255] images is (x - mean) / 0.5 on [0, 1] images, and the output
is mapped back the same way, so official weights apply unchanged to [0, 1] images.

Authors' formats (``authors_formats``): ChaofWang/AWSRN works on [0, 255] with the normalisation
above (so its files load as they are, on [0, 1]); the BAM repository feeds [0, 1] without it
(``input_norm=False``) and names the units ``body.i.lfl.j`` (ours ``body.i.bj``). Both store
the deprecated ``nn.utils.weight_norm`` names ``weight_g``/``weight_v``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from lit_sisr.attention import AttentionFactory, as_factory
from lit_sisr.backbones import register_backbone
from lit_sisr.backbones._authors import (
    BAM_MODULE_RULES,
    BAM_REPOSITORY,
    AuthorsFormat,
    rename_keys,
)
from lit_sisr.backbones.common import DIV2K_MEAN, conv


def wn_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """'Same' conv with weight normalisation w = g v / ||v|| (per output channel, bias kept).

    ``parametrizations.weight_norm`` rather than the deprecated ``nn.utils.weight_norm``: both
    hold g (out x 1 x 1 x 1) and v (the weight's shape) as parameters, so the count is the
    published one; only the state-dict names differ (see ``WEIGHT_NORM_RULES``).
    """
    return weight_norm(conv(in_channels, out_channels, kernel_size))


# ``nn.utils.weight_norm`` names (the authors') -> torch's parametrization names: g, then v.
WEIGHT_NORM_RULES = (
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
)


class Scale(nn.Module):
    """A learnable scalar multiplier (the authors' ``Scale``; parameter ``scale`` of shape (1,))."""

    def __init__(self, init_value: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(init_value)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class AWRU(nn.Module):
    """Adaptive weighted residual unit (AWRU): lambda_res body(x) + lambda_x x, both lambdas learned."""

    def __init__(self, n_feats: int, block_feats: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            wn_conv(n_feats, block_feats, 3), nn.ReLU(inplace=True), wn_conv(block_feats, n_feats, 3)
        )
        self.res_scale = Scale(1.0)
        self.x_scale = Scale(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_scale(self.body(x)) + self.x_scale(x)


class LFB(nn.Module):
    """Local fusion block (LFB): chained AWRUs whose outputs are concatenated and fused by a 3x3
    conv (the paper's local residual fusion unit, ``reduction``), added to the input with
    learnable weights.

    The units are named ``b0``, ``b1``, ... as in the authors' code so their checkpoints load.
    """

    def __init__(self, n_feats: int, block_feats: int, n_awru: int) -> None:
        super().__init__()
        self.n_awru = n_awru
        for i in range(n_awru):
            self.add_module(f"b{i}", AWRU(n_feats, block_feats))
        self.reduction = wn_conv(n_feats * n_awru, n_feats, 3)
        self.res_scale = Scale(1.0)
        self.x_scale = Scale(1.0)

    def units(self) -> Iterator[AWRU]:
        return (getattr(self, f"b{i}") for i in range(self.n_awru))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs, h = [], x
        for unit in self.units():
            h = unit(h)
            outs.append(h)
        return self.res_scale(self.reduction(torch.cat(outs, dim=1))) + self.x_scale(x)


class AWMS(nn.Module):
    """Adaptive weighted multi-scale reconstruction (AWMS): sum over kernel sizes k of
    lambda_k PixelShuffle(conv_k(x)), with conv_k to scale^2 x 3 channels.

    Modules are named ``tail_k{k}`` and ``scale_k{k}`` as in the authors' code; every weight
    starts at 1 / (number of kernels) (0.25 in the published network).
    """

    def __init__(self, scale: int, n_feats: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.kernel_sizes = tuple(kernel_sizes)
        for k in self.kernel_sizes:
            self.add_module(f"tail_k{k}", wn_conv(n_feats, 3 * scale**2, k))
            self.add_module(f"scale_k{k}", Scale(1 / len(self.kernel_sizes)))
        self.pixelshuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Weighting before or after the shuffle is the same; the authors weight before it.
        return sum(
            self.pixelshuffle(getattr(self, f"scale_k{k}")(getattr(self, f"tail_k{k}")(x))) for k in self.kernel_sizes
        )


@register_backbone("awsrn")
class AWSRN(nn.Module):
    scales = (2, 3, 4)
    authors_formats = {
        "official": AuthorsFormat("ChaofWang/AWSRN", rename_keys(*WEIGHT_NORM_RULES), input_range=255),
        "bam": AuthorsFormat(
            BAM_REPOSITORY,
            rename_keys(*WEIGHT_NORM_RULES, (r"\.lfl\.(\d+)\.", r".b\1."), *BAM_MODULE_RULES),
            options={"input_norm": False},
        ),
    }
    #: Options of a tiny network for tests and smoke runs (every attention site >= 16 channels).
    tiny = dict(n_blocks=1, n_awru=2, n_feats=16, block_feats=32, kernel_sizes=(3, 5))

    def __init__(
        self,
        scale: int,
        attention: "AttentionFactory | str | None" = None,
        n_blocks: int = 4,
        n_awru: int = 4,
        n_feats: int = 32,
        block_feats: int = 128,
        kernel_sizes: Sequence[int] = (3, 5, 7, 9),
        input_norm: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.input_norm = input_norm
        # A buffer, not a MeanShift conv: the published network has no parameters here, and
        # non-persistent because its checkpoints do not store the mean.
        self.register_buffer("rgb_mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Sequential(wn_conv(3, n_feats, 3))
        self.body = nn.Sequential(*[LFB(n_feats, block_feats, n_awru) for _ in range(n_blocks)])
        # The BAM code sizes this module block_feats // 4, which equals n_feats (32) in AWSRN;
        # the tensor at this site has n_feats channels.
        self.att = as_factory(attention)(n_feats, native="none", reduction=8)
        self.tail = AWMS(scale, n_feats, kernel_sizes)
        self.skip = nn.Sequential(wn_conv(3, 3 * scale**2, 3), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_norm:
            x = (x - self.rgb_mean) / 0.5
        y = self.tail(self.att(self.body(self.head(x)))) + self.skip(x)
        return y * 0.5 + self.rgb_mean if self.input_norm else y
