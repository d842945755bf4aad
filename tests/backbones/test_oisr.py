"""OISR-LF-s / OISR-LF: every attention at every scale trains, both ODE blocks solve their
scheme, the leapfrog option reproduces the official OISR sizes, the authors' formats compute in
their authors' ranges.

Full-size parameter counts of the paper's rows are checked in tests/test_params.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_sisr.backbones import BACKBONES, build_backbone, count_parameters
from lit_sisr.backbones.oisr import OISR, LeapfrogBlock, RungeKutta3Block

from checks import SCALES, assert_trains

NETWORKS = ("oisr_lf_s", "oisr_lf")
SMALL = BACKBONES.get("oisr_lf_s").tiny  # the declared tiny variant


@pytest.mark.parametrize("scale", SCALES)
def test_small_leapfrog_network_trains(scale: int) -> None:
    assert_trains(build_backbone("oisr_lf_s", scale, "bam", block="lf", **SMALL), scale)


# Official OISR-PyTorch sizes (README/paper, K params at x2, x3, x4) of the leapfrog networks.
OFFICIAL_LEAPFROG_K = {"oisr_lf_s": (1372.0, 1556.6, 1519.7), "oisr_lf": (4971.6, 5641.9, 5507.9)}


@pytest.mark.parametrize("name", NETWORKS)
def test_leapfrog_block_gives_the_official_sizes(name: str) -> None:
    for scale, kilo in zip(SCALES, OFFICIAL_LEAPFROG_K[name]):
        net = build_backbone(name, scale, "original", block="lf")
        assert round(count_parameters(net) / 1000, 1) == kilo


def _linear_block(block_cls: type[nn.Module], lam: float) -> nn.Module:
    """A block whose every stage is G(y) = lam * y (identity PReLU, centre-tap conv, no bias)."""
    channels = 4
    block = block_cls(channels)
    with torch.no_grad():
        for i in range(1, block.n_stages + 1):
            conv = getattr(block, f"conv{i}")
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[range(channels), range(channels), 1, 1] = lam
            getattr(block, f"relu{i}").weight.fill_(1.0)
    return block


@pytest.mark.parametrize("lam", [0.3, -0.7])
def test_blocks_solve_their_ode_scheme_on_the_linear_test_equation(lam: float) -> None:
    # On y' = lam y with h = 1, Kutta's RK3 step multiplies y by the 3rd-order Taylor polynomial
    # of exp(lam); four leapfrog steps from (y_-1, y_0) = (0, y) by 1 + 12 lam^2 + 16 lam^4.
    y = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        rk3 = _linear_block(RungeKutta3Block, lam)(y)
        lf = _linear_block(LeapfrogBlock, lam)(y)
    torch.testing.assert_close(rk3, y * (1 + lam + lam**2 / 2 + lam**3 / 6))
    torch.testing.assert_close(lf, y * (1 + 12 * lam**2 + 16 * lam**4))


def test_rk3_block_has_five_learnable_coefficients() -> None:
    block = RungeKutta3Block(8)
    scalars = {n: p.item() for n, p in block.named_parameters() if p.numel() == 1}
    expected = {"scale1": 0.5, "scale2": 2.0, "scale3": -1.0, "scale4": 4.0, "scale5": 1 / 6}
    assert scalars == pytest.approx(expected)


TINY = {"n_blocks": 2, "n_feats": 16}


def test_official_format_runs_the_255_range_weights_on_unit_range_images() -> None:
    # OISR-PyTorch trains on [0, 255] (rgb_range 255): its mean-shift biases are 255 x DIV2K mean.
    fmt = OISR.authors_formats["official"]
    torch.manual_seed(0)
    official = build_backbone("oisr_lf_s", 2, "original", block="lf", **TINY).double()  # computes on [0, 255]
    with torch.no_grad():
        for name, p in official.named_parameters():
            if "mean" in name:
                p.mul_(255.0 if name.endswith("bias") else 1.0)
            else:
                p.add_(0.1 * torch.randn_like(p))

    net = build_backbone("oisr_lf_s", 2, "original", **fmt.options, **TINY).double().eval()
    net.load_state_dict(fmt.convert(official.state_dict()), strict=True)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), official(255 * x) / 255)


def test_bam_format_ignores_the_unused_255_mean_shift_its_files_carry() -> None:
    # The BAM repository builds MeanShift(rgb_range=255) but never applies it: a 255-scaled
    # mean shift in its files must not change what the network computes on [0, 1] images.
    fmt = OISR.authors_formats["bam"]
    torch.manual_seed(0)
    net = build_backbone("oisr_lf_s", 2, "original", **fmt.options, **TINY).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        before = net(x)
        state = net.state_dict()
        for key in ("sub_mean.bias", "add_mean.bias"):
            state[key] = 255 * state[key]
        net.load_state_dict(fmt.convert(state), strict=True)
        torch.testing.assert_close(net(x), before, rtol=0, atol=0)
    assert net.sub_mean.bias.abs().max() > 100  # the file's values were loaded
