"""IMDN: every attention at every scale trains and sits where CCA was, before c5 in each IMDB;
official checkpoints load strictly (their published figures: tests/test_metrics.py)."""

from __future__ import annotations

import pytest
import torch

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import BACKBONES, build_backbone

from refdata import WEIGHTS, authors_net, need

SMALL = BACKBONES.get("imdn").tiny  # the declared tiny variant


@pytest.mark.parametrize("attention,native", [("original", "cca"), ("bam", "bam"), ("cbam", "cbam"), ("none", "none")])
def test_attention_replaces_cca_in_every_block(attention: str, native: str) -> None:
    net = build_backbone("imdn", 2, attention)
    assert [type(b.att) for b in net.blocks] == [ATTENTION.get(native)] * 6
    assert all(b.att is not None and b.c5.in_channels == 64 for b in net.blocks)


def test_attention_acts_on_the_distilled_concatenation() -> None:
    net = build_backbone("imdn", 2, "none", **SMALL)
    seen = []
    block = net.blocks[0]
    block.c5.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape))
    net(torch.rand(1, 3, 8, 8))
    assert seen == [(1, 16, 8, 8)]  # 4 distilled slices of 16/4 channels


def test_official_checkpoint_loads_strictly_and_other_scales_are_refused() -> None:
    path = need(WEIGHTS / "IMDN" / "IMDN_x2.pth", "official IMDN weights")
    authors_net("imdn", 2, path)
    with pytest.raises(RuntimeError, match=r"size mismatch for upsampler\.0\.weight"):
        authors_net("imdn", 3, path)
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*blocks\.0\.att\.ca\.fc1.*Unexpected.*conv_du"):
        authors_net("imdn", 2, path, attention="bam")
