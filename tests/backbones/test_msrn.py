"""MSRN: every attention at every scale trains (forward + backward), BAM sits in each MSRB,
the full-size network runs, and the mean shift works on [0, 1] images."""
from __future__ import annotations

import pytest
import torch

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import build_backbone, count_parameters
from lit_sisr.backbones.common import DIV2K_MEAN

ATTENTIONS = ["original", "none", "bam", "acam", "acam_star", "msam", "msam_star", "bam_star", "cbam"]
SCALES = [2, 3, 4]
SMALL = {"n_feats": 16, "n_blocks": 2}


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_small_msrn_trains_with_every_attention(attention: str, scale: int) -> None:
    torch.manual_seed(0)
    net = build_backbone("msrn", scale, attention, **SMALL)
    x = torch.rand(1, 3, 12, 12)
    y = net(x)
    assert y.shape == (1, 3, 12 * scale, 12 * scale)
    y.square().mean().backward()
    for name, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("attention", ATTENTIONS[2:])
def test_attention_sits_in_every_msrb(attention: str) -> None:
    net = build_backbone("msrn", 2, attention, **SMALL)
    cls = ATTENTION.get(attention)
    assert [type(block.att) for block in net.body] == [cls] * SMALL["n_blocks"]
    assert sum(isinstance(m, cls) for m in net.modules()) == SMALL["n_blocks"]


def test_original_msrn_has_no_attention() -> None:
    original = build_backbone("msrn", 2, "original", **SMALL)
    none = build_backbone("msrn", 2, "none", **SMALL)
    assert count_parameters(original) == count_parameters(none)
    assert all(isinstance(block.att, torch.nn.Identity) for block in original.body)


def test_mean_shift_adds_the_div2k_mean_in_unit_range() -> None:
    net = build_backbone("msrn", 2, "none", **SMALL)
    last = net.tail[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        y = net(torch.rand(1, 3, 6, 6))
    assert torch.allclose(y, torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1).expand_as(y))
    net.mean_shift = False
    with torch.no_grad():
        assert net(torch.rand(1, 3, 6, 6)).abs().max() == 0


@pytest.mark.parametrize("scale", SCALES)
def test_full_size_msrn_forward(scale: int) -> None:
    net = build_backbone("msrn", scale, "bam").eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, 16, 16))
    assert y.shape == (1, 3, 16 * scale, 16 * scale)
    assert torch.isfinite(y).all()
