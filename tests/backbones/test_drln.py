"""DRLN and its Laplacian attention: every attention at every scale trains (reduced size), the
authors' wiring (one unused fusion conv) is kept, the full-size network runs and official
checkpoint names map onto ours. Full-size parameter counts: tests/test_params.py."""

from __future__ import annotations

import pytest
import torch

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import BACKBONES, build_backbone

from checks import SCALES, assert_trains, full_size_on_meta

# Two groups of two modules; module 3 reads its group's input as module 5 (index 4) does in the
# full network, which leaves fusion conv 2 unused.
SMALL = BACKBONES.get("drln").tiny  # the declared tiny variant
UNUSED_FUSION = ("fusions.2.0.weight", "fusions.2.0.bias")


def test_figure_wiring_trains_every_parameter() -> None:
    assert_trains(build_backbone("drln", 2, "original", **{**SMALL, "group_input_blocks": []}), 2)


def test_group_input_block_must_not_start_a_group() -> None:
    with pytest.raises(ValueError, match="not the first of its group"):
        build_backbone("drln", 2, "original", **{**SMALL, "group_input_blocks": [2]})


def test_laplacian_attention_matches_drln_calayer() -> None:
    la = ATTENTION.get("la")(64)
    assert sum(p.numel() for p in la.parameters()) == 13_900  # bam_reference.md section 2, row 12
    assert [m.dilation for m in (la.c1[0], la.c2[0], la.c3[0])] == [(3, 3), (5, 5), (7, 7)]
    x = torch.rand(2, 64, 5, 7)
    y = la(x)
    # One weight per sample and channel, in (0, 1): y / x is constant over space.
    ratio = y / x
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), rtol=1e-5)
    assert ((ratio > 0) & (ratio < 1)).all()


def test_bam_replaces_the_laplacian_attention_in_every_module() -> None:
    net = build_backbone("drln", 2, "bam", **SMALL)
    assert all(type(block.att) is ATTENTION.get("bam") for block in net.blocks)
    assert not any(isinstance(m, ATTENTION.get("la")) for m in net.modules())


@pytest.mark.parametrize("scale", SCALES)
def test_full_size_drln_has_20_laplacian_attentions(scale: int) -> None:
    net = full_size_on_meta("drln", scale, "original")
    assert sum(type(m) is ATTENTION.get("la") for m in net.modules()) == 20


@pytest.mark.slow
def test_official_checkpoint_names_map_onto_ours() -> None:
    # Names and shapes of saeed-anwar/DRLN ``model/drln.py`` x4 state dict entries (492 in all).
    official = {
        "sub_mean.shifter.weight": (3, 3, 1, 1),
        "head.weight": (64, 3, 3, 3),
        "b1.r3.body.2.weight": (256, 256, 3, 3),
        "b1.g.body.0.weight": (64, 512, 1, 1),
        "b20.ca.c3.body.0.weight": (4, 64, 3, 3),
        "b7.ca.c4.body.0.bias": (64,),
        "c4.body.0.weight": (64, 128, 3, 3),
        "c16.body.0.weight": (64, 320, 3, 3),
        "upsample.up.body.3.weight": (256, 64, 3, 3),
        "tail.weight": (3, 64, 3, 3),
    }
    net = build_backbone("drln", 4, "original")
    ours = net.state_dict()
    assert len(ours) == 492
    converted = net.authors_formats["official"].convert({k: torch.empty(s) for k, s in official.items()})
    assert {k: tuple(ours[k].shape) for k in converted if k in ours} == {
        k: tuple(v.shape) for k, v in converted.items()
    }
