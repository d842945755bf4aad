"""RCAN: every attention at every scale trains (reduced size), the full-size network runs, and the
attention sites are the 200 RCAB ends. Full-size parameter counts: tests/test_params.py."""

from __future__ import annotations

import pytest

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import BACKBONES, build_backbone

from checks import SCALES, assert_mean_shift_adds_the_div2k_mean, full_size_on_meta

SMALL = BACKBONES.get("rcan").tiny  # the declared tiny variant


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
    assert_mean_shift_adds_the_div2k_mean(net)


@pytest.mark.parametrize("scale", SCALES)
def test_full_size_rcan_has_200_channel_attentions(scale: int) -> None:
    net = full_size_on_meta("rcan", scale, "original")
    assert sum(type(m) is ATTENTION.get("ca") for m in net.modules()) == 200
