"""Checks shared by the per-network tests (a helper module, not a test module). What every
network x attention must satisfy is in test_zoo.py; these serve architecture-specific tests."""

from __future__ import annotations

import torch
from torch import nn

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import build_backbone

SCALES = (2, 3, 4)
# The attentions that put a module of their own at a site (every registered one but `none`).
ADDED_ATTENTIONS = [name for name in ATTENTION.names() if name != "none"]
# The DIV2K RGB mean in [0, 1] that EDSR-style mean shifts subtract and add back.
DIV2K_MEAN_RGB = (0.4488, 0.4371, 0.4040)


def assert_trains(net: nn.Module, scale: int, size: int = 12, no_grad: tuple[str, ...] = ()) -> None:
    """Forward + backward on a small input: output is LR * scale and every trainable parameter
    (except the named ones, which the published wiring leaves unused) gets a finite gradient."""
    torch.manual_seed(0)
    out = net(torch.rand(1, 3, size, size))
    assert out.shape == (1, 3, size * scale, size * scale)
    out.square().mean().backward()
    params = dict(net.named_parameters())
    assert not set(no_grad) - params.keys(), f"no parameters {sorted(set(no_grad) - params.keys())}"
    for name, p in params.items():
        if not p.requires_grad:
            continue
        if name in no_grad:
            assert p.grad is None, f"{name} should be unused"
            continue
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


def assert_mean_shift_adds_the_div2k_mean(net: nn.Module) -> None:
    """With the last conv of ``net.tail`` zeroed, the output is exactly the DIV2K mean that the
    mean shift adds back, at every pixel."""
    with torch.no_grad():
        net.tail[-1].weight.zero_()
        net.tail[-1].bias.zero_()
        out = net(torch.rand(1, 3, 6, 6))
    assert torch.allclose(out, torch.tensor(DIV2K_MEAN_RGB).view(1, 3, 1, 1).expand_as(out))


def full_size_on_meta(name: str, scale: int, attention: str) -> nn.Module:
    """The full-size network built on the meta device: its structure, no memory, no forward."""
    with torch.device("meta"):
        return build_backbone(name, scale, attention)
