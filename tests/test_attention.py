"""Attention modules: parameter formulas from the BAM code, exact maths, registry behaviour."""

from __future__ import annotations

import pytest
import torch

from lit_sisr.attention import ATTENTION, AttentionFactory, attention_names
from lit_sisr.attention.balanced import BalancedAttention


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    "channels,reduction,expected",
    # P(C, r) = 2 C floor(C/r) + floor(C/r) + 49 (bam_reference.md section 2)
    [(64, 16, 565), (256, 16, 8257), (32, 16, 179), (122, 16, 1764), (32, 8, 309), (24, 8, 196)],
)
def test_bam_parameter_formula(channels: int, reduction: int, expected: int) -> None:
    assert n_params(AttentionFactory("bam")(channels, reduction=reduction)) == expected


@pytest.mark.parametrize(
    "name,expected",
    # C = 64, r = 16: section 1 of bam_reference.md
    [
        ("acam", 516),
        ("acam_star", 516),
        ("msam", 49),
        ("msam_star", 98),
        ("bam", 565),
        ("bam_star", 614),
        ("cbam", 610),
        ("cca", 580),
        ("ca", 580),
        ("none", 0),
    ],
)
def test_module_parameter_counts(name: str, expected: int) -> None:
    assert n_params(AttentionFactory(name)(64)) == expected


def test_every_registered_module_takes_channels_first_and_keeps_shape() -> None:
    x = torch.randn(2, 32, 7, 5)
    for name in ATTENTION.names():
        module = ATTENTION.get(name)(32)
        assert module(x).shape == x.shape, name


def test_bam_equals_the_straightforward_formula() -> None:
    torch.manual_seed(0)
    bam = AttentionFactory("bam")(32)
    x = torch.randn(2, 32, 6, 9)
    ca = torch.sigmoid(bam.ca.fc2(bam.ca.act(bam.ca.fc1(x.mean(dim=(2, 3), keepdim=True)))))
    sa = torch.sigmoid(bam.sa.conv(x.max(dim=1, keepdim=True).values))
    torch.testing.assert_close(bam(x), (ca * sa) * x, rtol=1e-6, atol=1e-7)


def test_bam_star_and_cbam_pool_both_ways() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 32, 5, 5)
    star = AttentionFactory("bam_star")(32)
    mlp = lambda v: star.ca.fc2(star.ca.act(star.ca.fc1(v)))  # noqa: E731
    ca = torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    sa = torch.sigmoid(star.sa.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
    torch.testing.assert_close(star(x), x * ca * sa, rtol=1e-6, atol=1e-7)
    cbam = AttentionFactory("cbam")(32)
    assert isinstance(cbam.ca.act, torch.nn.ReLU)  # CBAM uses ReLU, BAM PReLU
    assert isinstance(star.ca.act, torch.nn.PReLU) and star.ca.act.weight.numel() == 2


def test_cca_is_std_plus_mean_channel_attention() -> None:
    torch.manual_seed(0)
    cca = AttentionFactory("cca")(16, reduction=4)
    x = torch.randn(2, 16, 4, 6)
    stat = x.std(dim=(2, 3), unbiased=False, keepdim=True) + x.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(cca(x), x * cca.conv_du(stat))


def test_factory_original_builds_the_native_module_and_none_an_identity() -> None:
    assert type(AttentionFactory("original")(64, native="cca")).__name__ == "ContrastChannelAttention"
    assert isinstance(AttentionFactory("original")(64), torch.nn.Identity)
    assert isinstance(AttentionFactory("none")(64, native="cca"), torch.nn.Identity)
    assert isinstance(AttentionFactory("bam")(64, native="cca"), BalancedAttention)


def test_user_reduction_overrides_the_backbone_default() -> None:
    default = AttentionFactory("bam")(64, reduction=8)
    assert default.ca.fc1.out_channels == 8
    assert AttentionFactory("bam", reduction=4)(64, reduction=8).ca.fc1.out_channels == 16
    assert AttentionFactory("bam", reduction=None)(64, reduction=8).ca.fc1.out_channels == 8


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(KeyError, match="unknown attention 'bma'; expected one of: .*bam.*cbam"):
        AttentionFactory("bma")
    assert "original" in attention_names() and "bam" in attention_names()


def test_cbam_keeps_its_hard_coded_ratio_in_networks_that_reduce_by_8() -> None:
    assert AttentionFactory("cbam")(24, reduction=8).ca.fc1.out_channels == 1  # 24 // 16, as coded
    assert AttentionFactory("cbam", ratio=8)(24, reduction=8).ca.fc1.out_channels == 3


def test_option_a_module_does_not_take_is_an_error() -> None:
    with pytest.raises(TypeError, match="attention 'msam' takes no option"):
        AttentionFactory("msam", reduction=8)(64)
