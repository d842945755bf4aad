"""Checks shared by the backbone tests."""
from __future__ import annotations

import torch
from torch import nn

from lit_sisr.backbones import build_backbone

# Every attention of the paper: the network's own, none, BAM and the Table 3 ablation modules.
ATTENTIONS = ("original", "none", "bam", "acam", "acam_star", "msam", "msam_star", "bam_star", "cbam")
# The attentions that put a module of their own at a site (all but `original` and `none`).
ADDED_ATTENTIONS = ATTENTIONS[2:]
SCALES = (2, 3, 4)
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


def assert_site_is_empty_without_attention(site: nn.Module, attention: str) -> None:
    """For a network with no attention of its own: `original` and `none` add no parameters at the
    attention site, every other attention does."""
    n_params = sum(p.numel() for p in site.parameters())
    assert (n_params == 0) == (attention in ("original", "none")), f"{attention}: {n_params} parameters at the site"


def assert_mean_shift_adds_the_div2k_mean(net: nn.Module) -> None:
    """With the last conv of ``net.tail`` zeroed, the output is exactly the DIV2K mean that the
    mean shift adds back, at every pixel."""
    with torch.no_grad():
        net.tail[-1].weight.zero_()
        net.tail[-1].bias.zero_()
        out = net(torch.rand(1, 3, 6, 6))
    assert torch.allclose(out, torch.tensor(DIV2K_MEAN_RGB).view(1, 3, 1, 1).expand_as(out))


def assert_full_size_forward(name: str, scale: int, attention: str = "bam", **options) -> nn.Module:
    """The full-size network runs one forward pass on a 16x16 input."""
    net = build_backbone(name, scale, attention, **options).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 16, 16))
    assert out.shape == (1, 3, 16 * scale, 16 * scale) and torch.isfinite(out).all()
    return net
