"""RCAN: every attention at every scale trains (reduced size), the full-size network runs, and the
attention sites are the 200 RCAB ends. Full-size parameter counts: tests/test_params.py."""
from __future__ import annotations

import pytest
import torch

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import build_backbone

ATTENTIONS = ["original", "none", "bam", "acam", "acam_star", "msam", "msam_star", "bam_star", "cbam"]
SCALES = [2, 3, 4]
SMALL = dict(n_resgroups=2, n_resblocks=2, n_feats=16)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small convs run many times slower with 2 intra-op threads when the 2 cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_reduced_rcan_forward_backward(attention: str, scale: int) -> None:
    torch.manual_seed(0)
    net = build_backbone("rcan", scale, attention, **SMALL)
    lr = torch.rand(1, 3, 12, 12)
    sr = net(lr)
    assert sr.shape == (1, 3, 12 * scale, 12 * scale)
    sr.mean().backward()
    for name, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("attention", ["original", "none", "bam"])
def test_attention_sites_are_the_end_of_every_rcab(attention: str) -> None:
    net = build_backbone("rcan", 2, attention, **SMALL)
    expected = ATTENTION.get({"original": "ca"}.get(attention, attention))
    ends = [block.body[-1] for group in net.body[:-1] for block in group.body[:-1]]
    assert len(ends) == 4 and all(type(m) is expected for m in ends)
    # No other module of an attention type anywhere else in the network.
    attention_types = tuple(ATTENTION.get(n) for n in ("ca", "bam"))
    assert sum(isinstance(m, attention_types) for m in net.modules()) == (0 if attention == "none" else 4)


def test_mean_shift_is_frozen_and_applied() -> None:
    net = build_backbone("rcan", 2, "original", **SMALL)
    assert not any(p.requires_grad for p in [*net.sub_mean.parameters(), *net.add_mean.parameters()])
    # With every learned weight zeroed the network outputs exactly the DIV2K mean it adds back.
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.zero_()
        sr = net(torch.rand(1, 3, 8, 8))
    assert torch.allclose(sr, torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1).expand_as(sr))


@pytest.mark.slow
@pytest.mark.parametrize("scale", SCALES)
def test_full_size_rcan_forward(scale: int) -> None:
    net = build_backbone("rcan", scale, "original").eval()
    assert sum(type(m) is ATTENTION.get("ca") for m in net.modules()) == 200
    with torch.no_grad():
        sr = net(torch.rand(1, 3, 16, 16))
    assert sr.shape == (1, 3, 16 * scale, 16 * scale)
    assert torch.isfinite(sr).all()
