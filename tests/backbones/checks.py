"""Checks shared by the backbone tests."""
from __future__ import annotations

import torch
from torch import nn

from lit_sisr.backbones import build_backbone

# Every attention of the paper: the network's own, none, BAM and the Table 3 ablation modules.
ATTENTIONS = ("original", "none", "bam", "acam", "acam_star", "msam", "msam_star", "bam_star", "cbam")
SCALES = (2, 3, 4)


def assert_trains(net: nn.Module, scale: int, size: int = 12, no_grad: tuple[str, ...] = ()) -> None:
    """Forward + backward on a small input: output is LR * scale and every trainable parameter
    (except the named ones, which the published wiring leaves unused) gets a finite gradient."""
    torch.manual_seed(0)
    out = net(torch.rand(1, 3, size, size))
    assert out.shape == (1, 3, size * scale, size * scale)
    out.square().mean().backward()
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        if name in no_grad:
            assert p.grad is None, f"{name} should be unused"
            continue
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


def assert_full_size_forward(name: str, scale: int, attention: str = "bam", **options) -> nn.Module:
    """The full-size network runs one forward pass on a 16x16 input."""
    net = build_backbone(name, scale, attention, **options).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 16, 16))
    assert out.shape == (1, 3, 16 * scale, 16 * scale) and torch.isfinite(out).all()
    return net
