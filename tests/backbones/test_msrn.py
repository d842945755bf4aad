"""MSRN: every attention at every scale trains (forward + backward), BAM sits in each MSRB,
the full-size network runs, and the mean shift works on [0, 1] images."""

from __future__ import annotations

import pytest
import torch

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import BACKBONES, build_backbone, count_parameters

from checks import ADDED_ATTENTIONS, assert_mean_shift_adds_the_div2k_mean

SMALL = BACKBONES.get("msrn").tiny  # the declared tiny variant


@pytest.mark.parametrize("attention", ADDED_ATTENTIONS)
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
    assert_mean_shift_adds_the_div2k_mean(net)
    net.mean_shift = False  # the zeroed tail then gives zeros
    with torch.no_grad():
        assert net(torch.rand(1, 3, 6, 6)).abs().max() == 0
