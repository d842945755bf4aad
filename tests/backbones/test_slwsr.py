"""s-LWSR32: every attention at every scale trains (forward + backward), BAM sits once before
the global skip, the full-size network runs, and the authors' parameter names load."""

from __future__ import annotations

import pytest
import torch

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import BACKBONES, build_backbone, count_parameters
from lit_sisr.backbones.slwsr import SLWSR

from checks import ADDED_ATTENTIONS, assert_mean_shift_adds_the_div2k_mean

SMALL = BACKBONES.get("slwsr32").tiny  # the declared tiny variant


@pytest.mark.parametrize("attention", ADDED_ATTENTIONS)
def test_one_attention_before_the_global_skip(attention: str) -> None:
    net = build_backbone("slwsr32", 2, attention, **SMALL)
    cls = ATTENTION.get(attention)
    assert type(net.att) is cls
    assert sum(isinstance(m, cls) for m in net.modules()) == 1


def test_original_slwsr_has_no_attention() -> None:
    original = build_backbone("slwsr32", 2, "original")
    assert isinstance(original.att, torch.nn.Identity)
    assert count_parameters(original) == count_parameters(build_backbone("slwsr32", 2, "none"))


def test_mean_shift_adds_the_div2k_mean_in_unit_range() -> None:
    assert_mean_shift_adds_the_div2k_mean(build_backbone("slwsr32", 2, "none", **SMALL))


def _official_names() -> list[str]:
    """Parameter names of Sudo-Biao/s-LWSR ``lwsr.py`` (``LWSR``), written out from that file."""
    res = ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]
    blocks = [f"feat{level}_{i}" for level in range(2, 6) for i in (1, 2, 3)] + ["feat6_1", "feat6_2"]
    blocks += [name for level in range(7, 11) for name in (f"feat{level}_1", f"feat{level}_2", f"conv{level}")]
    names = [f"{b}.{r}" for b in blocks for r in res]
    names += [f"feat{level}_1.conv.{p}" for level in range(7, 11) for p in ("weight", "bias")]
    names += ["conv1.weight", "head.0.weight", "head.0.bias", "tail.1.weight", "tail.1.bias"]
    names += [f"{m}.{p}" for m in ("sub_mean", "add_mean") for p in ("weight", "bias")]
    return names + ["tail.0.0.weight", "tail.0.0.bias", "tail.0.2.weight", "tail.0.2.bias"]  # x4 upsampler


def test_official_checkpoint_names_map_onto_ours() -> None:
    net = build_backbone("slwsr32", 4, "original")
    ours = net.state_dict()
    converted = SLWSR.authors_formats["official"].convert({name: name for name in _official_names()})
    assert set(converted) == set(ours)
    # The distinctive layers land where they belong: the bias-free 6C -> C pool and the
    # 2C -> C fusion convs that open each decoder level.
    assert converted["info_pool.weight"] == "conv1.weight"
    assert ours["info_pool.weight"].shape == (32, 6 * 32, 1, 1)
    for level in range(4):
        assert converted[f"decoder.{level}.0.conv.weight"] == f"feat{7 + level}_1.conv.weight"
        assert converted[f"decoder.{level}.2.body.0.weight"] == f"conv{7 + level}.body.0.weight"
    assert converted["encoder.0.0.body.0.weight"] == "feat2_1.body.0.weight"
    assert converted["bottleneck.1.body.2.bias"] == "feat6_2.body.2.bias"
