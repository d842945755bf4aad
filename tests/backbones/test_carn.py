"""CARN and CARN-M: every attention at every scale trains, the BAM sites are the three outer
cascade fusions, and the released CARN-M checkpoint reproduces its authors' figures."""

from __future__ import annotations

import pytest

from lit_sisr.attention import ATTENTION
from lit_sisr.backbones import BACKBONES, build_backbone, count_parameters

from checks import SCALES, assert_trains
from refdata import WEIGHTS, authors_net, need

SMALL = BACKBONES.get("carn").tiny  # the declared tiny variant


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("attention", ["original", "bam"])
def test_official_group_4_carn_m_trains(attention: str, scale: int) -> None:
    # (group 1, the BAM paper's, is in test_zoo.py.) The other scales' upsamplers are frozen
    # (next test), so every trainable parameter is used.
    assert_trains(build_backbone("carn_m", scale, attention, **SMALL, group=4), scale)


@pytest.mark.parametrize("scale", SCALES)
def test_only_mean_shifts_and_other_scales_upsamplers_are_frozen(scale: int) -> None:
    net = build_backbone("carn", scale, "none", **SMALL)
    frozen = {n.rsplit(".", 1)[0] for n, p in net.named_parameters() if not p.requires_grad}
    others = {f"upsample.up{s}.body.{i}" for s in SCALES if s != scale for i in ((0, 3) if s == 4 else (0,))}
    assert frozen == {"sub_mean", "add_mean"} | others


@pytest.mark.parametrize("name", ["carn", "carn_m"])
def test_attention_sits_after_the_three_outer_fusions(name: str) -> None:
    net = build_backbone(name, 2, "bam")
    bam = ATTENTION.get("bam")
    assert sorted(n for n, m in net.named_modules() if isinstance(m, bam)) == ["c1.att", "c2.att", "c3.att"]
    # CARN has no native attention: 'original' is 'none', the official layer names unchanged.
    original = build_backbone(name, 2, "original").state_dict()
    assert original.keys() == build_backbone(name, 2, "none").state_dict().keys()
    assert not any(".att." in k for k in original)


def test_carn_m_reuses_one_efficient_unit_per_block() -> None:
    net = build_backbone("carn_m", 2, "none", group=4)
    for block in (net.b1, net.b2, net.b3):
        assert [n for n, _ in block.named_children()] == ["b1", "c1", "c2", "c3"]
        assert block.b1.body[0].groups == 4 and block.b1.body[4].kernel_size == (1, 1)
    assert net.upsample.up3.body[0].groups == 4


@pytest.mark.parametrize(("scale", "thousands"), [(2, 964.2), (3, 1148.8), (4, 1111.9)])
def test_single_scale_option_matches_official_single_scale_carn(scale: int, thousands: float) -> None:
    # CARN paper / bam_reference.md section 2: official single-scale CARN 964.2K/1148.8K/1111.9K.
    net = build_backbone("carn", scale, "original", multi_scale=False)
    assert list(net.upsample.keys()) == ["up"]
    assert round(count_parameters(net) / 1000, 1) == thousands


def test_official_carn_m_file_fits_only_the_group_4_model() -> None:
    path = need(WEIGHTS / "CARN-M" / "carn_m.pth", "official CARN-M weights")
    authors_net("carn_m", 2, path)  # the official format: group 4
    with pytest.raises(RuntimeError, match="size mismatch for b1.b1.body.0.weight"):
        authors_net("carn_m", 2, path, group=1)  # the BAM paper's
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: .*c1\.att\.ca"):
        authors_net("carn_m", 2, path, attention="bam")
