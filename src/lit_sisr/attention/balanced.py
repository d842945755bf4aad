"""The Balanced Attention Mechanism family, exactly as the BAM authors coded it.

Reference: BAM paper, Sec. 3 (Eqs. 1, 4-13), and dandingbudanding/BAM ``Blanced_attention.py``
and ``CBAM.py`` (see docs/architectures.md). Facts that the code fixes and
the paper leaves open: the channel MLP is two bias-free 1x1 convs with a PReLU of ``C // r``
slopes in between; the spatial gate is a bias-free 7x7 conv; BAM multiplies the channel map and
the spatial map (computed in parallel from the same input) with no residual and no fusion conv.

One class covers the family: a module has an optional channel gate and an optional spatial gate,
each defined by the poolings it feeds to its shared weights. The registered names differ only in
those poolings.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import register_attention


def _pool_channels(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Global pooling over H, W: N x C x 1 x 1."""
    if kind == "avg":
        return x.mean(dim=(2, 3), keepdim=True)
    return x.amax(dim=(2, 3), keepdim=True)


def _pool_space(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Pooling over channels: N x 1 x H x W."""
    if kind == "avg":
        return x.mean(dim=1, keepdim=True)
    return x.amax(dim=1, keepdim=True)


class ChannelGate(nn.Module):
    """ACAM (Eq. 4-6): sigma(sum over poolings of W2 act(W1 pool(x))), shared bias-free MLP."""

    def __init__(
        self, channels: int, reduction: int = 16, pools: tuple[str, ...] = ("avg",), act: str = "prelu"
    ) -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(f"attention reduction {reduction} leaves no hidden units for {channels} channels")
        self.pools = pools
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.act = nn.PReLU(hidden) if act == "prelu" else nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self._mlp(_pool_channels(x, self.pools[0]))
        for p in self.pools[1:]:  # not sum(): no "0 + tensor" op
            logits = logits + self._mlp(_pool_channels(x, p))
        return torch.sigmoid(logits)

    def _mlp(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(pooled)))


class SpatialGate(nn.Module):
    """MSAM (Eq. 7-8): sigma(K7([pool_c x ...])), a bias-free 7x7 conv over the channel poolings."""

    def __init__(self, pools: tuple[str, ...] = ("max",), kernel_size: int = 7) -> None:
        super().__init__()
        self.pools = pools
        self.conv = nn.Conv2d(len(pools), 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [_pool_space(x, p) for p in self.pools]
        return torch.sigmoid(self.conv(pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=1)))


class BalancedAttention(nn.Module):
    """BAM (Eq. 10-13): out = (ACAM(x) (x) MSAM(x)) * x, both maps from the same input.

    Subclasses only choose the poolings; an empty tuple drops that gate (ACAM, MSAM alone).
    """

    channel_pools: tuple[str, ...] = ("avg",)
    spatial_pools: tuple[str, ...] = ("max",)
    global_context = "channel gate on a global average pool"

    def __init_subclass__(cls, **kwargs) -> None:
        # Local (for tiling) exactly when there is no channel gate: the spatial gate is a 7x7 conv
        # over per-pixel channel poolings. The poolings are the declaration; this only reads them.
        super().__init_subclass__(**kwargs)
        cls.local = not cls.channel_pools
        pools = " and ".join({"avg": "average", "max": "max"}[p] for p in cls.channel_pools)
        many = len(cls.channel_pools) > 1
        cls.global_context = f"channel gate on {'' if many else 'a '}global {pools} pool{'s' if many else ''}"

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.ca = ChannelGate(channels, reduction, self.channel_pools) if self.channel_pools else None
        self.sa = SpatialGate(self.spatial_pools, kernel_size) if self.spatial_pools else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ca is None:
            return x * self.sa(x)
        if self.sa is None:
            return x * self.ca(x)
        # Two broadcast products with the small maps (N x C x 1 x 1, then N x 1 x H x W), never
        # the C x H x W outer product of the maps. Without autograd the second product is done in
        # place: one full-size tensor allocated instead of two (same arithmetic, same bits).
        # With autograd it cannot be: the first product is what the second one's backward reads.
        ca, sa = self.ca(x), self.sa(x)
        if torch.is_grad_enabled():
            return (x * ca) * sa
        return torch.mul(x, ca).mul_(sa)


register_attention("bam")(BalancedAttention)


@register_attention("bam_star")
class BalancedAttentionStar(BalancedAttention):
    """BAM* (``BlancedAttention_CAM_SAM_ADD``): ACAM* x MSAM*, avg+max in both gates."""

    channel_pools = ("avg", "max")
    spatial_pools = ("avg", "max")


@register_attention("acam")
class ACAM(BalancedAttention):
    """ACAM alone (``ChannelAttention``), applied as ``att(x) * x``."""

    spatial_pools = ()


@register_attention("acam_star")
class ACAMStar(BalancedAttention):
    """ACAM* (``ChannelAttention_maxpool``): avg- and max-pooled paths through one MLP."""

    channel_pools = ("avg", "max")
    spatial_pools = ()


@register_attention("msam")
class MSAM(BalancedAttention):
    """MSAM alone (``SpatialAttention``): 7x7 conv over the channel max, 49 parameters."""

    channel_pools = ()

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__(channels, kernel_size=kernel_size)


@register_attention("msam_star")
class MSAMStar(MSAM):
    """MSAM* (``SpatialAttention_averagepool``): channel mean and max, 98 parameters."""

    spatial_pools = ("avg", "max")


@register_attention("cbam")
class CBAM(nn.Module):
    """CBAM as the BAM authors coded it (``CBAM.py``), not the reference CBAM of Woo et al.

    Sequential: x' = CA(x) * x, out = SA(x') * x'. CA uses a bias-free 1x1-conv MLP with ReLU on
    avg and max pools; SA is a bias-free 7x7 conv on [mean, max] with no BatchNorm. The authors
    hard-code the hidden size as C // 16 whatever the network, so CBAM takes ``ratio`` (default
    16) instead of the backbones' ``reduction`` (8 in AWSRN and PAN does not apply to it).
    """

    global_context = "channel gate on global average and max pools"

    def __init__(self, channels: int, ratio: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.ca = ChannelGate(channels, ratio, ("avg", "max"), act="relu")
        self.sa = SpatialGate(("avg", "max"), kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.ca(x)
        if torch.is_grad_enabled():
            return x * self.sa(x)
        return x.mul_(self.sa(x))  # x is our own product here: scale it in place (the map is computed first)
