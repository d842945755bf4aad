"""EDSR: every attention at every scale trains, BAM sits on the body output, full size runs."""

from __future__ import annotations

import pytest

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import BACKBONES, build_backbone, count_parameters

from checks import SCALES, assert_mean_shift_adds_the_div2k_mean, full_size_on_meta

SMALL = BACKBONES.get("edsr").tiny  # the declared tiny variant


def test_attention_is_one_module_before_the_global_skip() -> None:
    net = build_backbone("edsr", 2, "bam", **SMALL)
    assert isinstance(net.att, ATTENTION.get("bam"))
    assert sum(isinstance(m, ATTENTION.get("bam")) for m in net.modules()) == 1
    # EDSR has no attention of its own
    assert count_parameters(build_backbone("edsr", 2, "original", **SMALL)) == count_parameters(
        build_backbone("edsr", 2, "none", **SMALL)
    )


def test_residual_scaling_and_mean_shift_follow_the_original_edsr() -> None:
    net = build_backbone("edsr", 2, "none")
    assert net.body[0].res_scale == 0.1 and net.mean_shift
    assert not any(p.requires_grad for p in net.sub_mean.parameters())
    assert_mean_shift_adds_the_div2k_mean(net)


@pytest.mark.parametrize("scale", SCALES)
def test_full_size_edsr_shape(scale: int) -> None:
    net = full_size_on_meta("edsr", scale, "bam")
    assert len(net.body) == 33 and net.head[0].out_channels == 256  # 32 blocks + conv, 256 features
