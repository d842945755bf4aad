"""Every network x every attention module, from the registries: nothing here names either.

For each network with attention sites and each name ``attention=`` accepts (``original`` and
every registered module), a tiny variant (the network's declared ``tiny`` options) is built at
one of its scales (rotating, so each network meets every scale) and checked:

- each factory call's module sits in the network, of the class the call resolves to
  (``original``: the native one);
- the attention changes nothing outside its sites (same keys and shapes as ``attention=none``);
- forward gives LR x scale, backward gives every site parameter a finite gradient, and the
  backbone parameters without one are the same as with ``attention=none`` (the published wiring).

Full-size networks run one forward pass at every scale. Per-network files keep only what is
particular to one architecture.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from lit_sisr.attention import ATTENTION, AttentionFactory, attention_names
from lit_sisr.backbones import BACKBONES, build_backbone, native_attention

NETWORKS = [name for name in BACKBONES.names() if native_attention(name)]
CASES = [
    (name, attention, BACKBONES.get(name).scales[(i + j) % len(BACKBONES.get(name).scales)])
    for i, name in enumerate(NETWORKS)
    for j, attention in enumerate(attention_names())
]
SLOW_FULL_SIZE = {"drln", "rcan"}  # 16M / 34M parameters: seconds per forward pass on CPU


class RecordingFactory(AttentionFactory):
    """The user's attention, remembering the native module each site asked for."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.natives: list[str] = []
        self.built: list[nn.Module] = []

    def __call__(self, channels: int, *, native: str = "none", **defaults) -> nn.Module:
        self.natives.append(native)
        self.built.append(super().__call__(channels, native=native, **defaults))
        return self.built[-1]


def sites(net: nn.Module) -> dict[str, nn.Module]:
    classes = {ATTENTION.get(name) for name in ATTENTION.names()}
    return {path: m for path, m in net.named_modules() if type(m) in classes}


def forward_backward(net: nn.Module, scale: int, size: int = 12) -> set[str]:
    """One training step's gradients; returns the trainable parameters that got none."""
    torch.manual_seed(0)
    out = net(torch.rand(1, 3, size, size))
    assert out.shape == (1, 3, size * scale, size * scale)
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    return {name for name, p in net.named_parameters() if p.requires_grad and p.grad is None}


@functools.lru_cache(maxsize=None)
def without_attention(name: str, scale: int) -> tuple[dict[str, tuple], frozenset[str]]:
    """Shapes of every tensor of the ``attention=none`` network, and its unused parameters."""
    net = build_backbone(name, scale, "none", tiny=True)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    return shapes, frozenset(forward_backward(net, scale))


@pytest.mark.parametrize(("name", "attention", "scale"), CASES)
def test_every_attention_in_every_network(name: str, attention: str, scale: int) -> None:
    torch.manual_seed(0)
    factory = RecordingFactory(attention)
    net = build_backbone(name, scale, factory, tiny=True)
    found = sites(net)
    # Every module the factory built sits in the network, of the class its call resolves to;
    # any other site is a fixed identity (RCAN's skeleton site on the body output).
    assert [type(m) for m in factory.built] == [ATTENTION.get(factory.resolve(n)) for n in factory.natives]
    assert {id(m) for m in factory.built} <= {id(m) for m in found.values()}
    others = [m for m in found.values() if all(m is not b for b in factory.built)]
    assert all(type(m) is ATTENTION.get("none") for m in others)

    def outside(key: str) -> bool:
        return not any(key.startswith(f"{path}.") for path in found)

    shapes, unused = without_attention(name, scale)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items() if outside(k)} == shapes
    site_params = {k for k in dict(net.named_parameters()) if not outside(k)}
    assert bool(site_params) == any(n != "none" for n in map(factory.resolve, factory.natives))
    missing = forward_backward(net, scale)
    assert not missing & site_params, f"attention parameters without a gradient: {sorted(missing & site_params)}"
    assert missing == unused


@pytest.mark.parametrize("scale", BACKBONES.get("bicubic").scales)
def test_bicubic_has_no_sites_and_refuses_attention(scale: int) -> None:
    assert native_attention("bicubic") == ()
    out = build_backbone("bicubic", scale, "original")(torch.rand(1, 3, 6, 7))
    assert out.shape == (1, 3, 6 * scale, 7 * scale)
    with pytest.raises(ValueError, match="no attention sites"):
        build_backbone("bicubic", scale, "bam")


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        pytest.param(name, scale, marks=[pytest.mark.slow] if name in SLOW_FULL_SIZE else [])
        for name in NETWORKS
        for scale in BACKBONES.get(name).scales
    ],
)
def test_full_size_forward(name: str, scale: int) -> None:
    # BAM at full size; the two big networks keep their own attention (as the paper's Table 2 runs).
    net = build_backbone(name, scale, "original" if name in SLOW_FULL_SIZE else "bam").eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 16, 16))
    assert out.shape == (1, 3, 16 * scale, 16 * scale) and torch.isfinite(out).all()
