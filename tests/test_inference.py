"""Self-ensemble and tiled inference (``lit_sisr.inference``)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from lit_sisr.attention import ATTENTION, is_local
from lit_sisr.backbones import BACKBONES, build_backbone, native_attention
from lit_sisr.data.io import read_image, to_float
from lit_sisr.inference import (
    DIHEDRAL,
    Inference,
    NotTileableError,
    orient,
    receptive_radius,
    self_ensemble,
    tiled_forward,
)
from lit_sisr.metrics import psnr_y

from refdata import BENCHMARK, WEIGHTS, authors_net, need

# Attention modules by their declaration: local ones tile exactly, every other one pools globally.
LOCAL_ATTENTION = sorted(n for n in ATTENTION.names() if is_local(ATTENTION.get(n)))
GLOBAL_ATTENTION = sorted(n for n in ATTENTION.names() if not is_local(ATTENTION.get(n)))
# Networks by the native attention they build at their sites (``original``).
WITH_SITES = [n for n in BACKBONES.names() if native_attention(n)]
GLOBAL_ORIGINAL = {n: native_attention(n)[0] for n in WITH_SITES if native_attention(n)[0] in GLOBAL_ATTENTION}
# Every backbone with attention=none, and with original where that is local.
LOCAL_CONFIGS = [(name, "none") for name in WITH_SITES] + [
    (name, "original") for name in BACKBONES.names() if name not in GLOBAL_ORIGINAL
]
# How far the bound may exceed the exact reach: parallel branches (AWSRN's multi-kernel tail,
# MSRN's 3x3/5x5 pairs, DRLN's dense units) and PAN's bilinear skip, counted in series.
LOOSE_BY = {"awsrn": 2, "drln": 6, "msrn": 4, "pan": 3}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny(name: str, attention: str = "none", scale: int = 2, **options) -> nn.Module:
    torch.manual_seed(0)
    return build_backbone(name, scale, attention, **{**BACKBONES.get(name).tiny, **options}).eval()


def exact_reach(net: nn.Module, bound: int, scale: int) -> int:
    """The true reach of ``net`` in LR pixels along W: a copy with every parameter made positive
    (so every activation and every gradient along every path is positive: nothing cancels or
    switches off) on an all-ones 1-row image; the furthest input pixel with a nonzero gradient
    for the outputs of the centre pixel."""
    probe = copy.deepcopy(net)
    with torch.no_grad():
        for p in probe.parameters():
            p.copy_(p.abs() + 0.01)
    width = 2 * bound + 9
    centre = width // 2
    x = torch.ones(1, 3, 1, width, requires_grad=True)
    probe(x)[..., centre * scale : (centre + 1) * scale].sum().backward()
    reached = (x.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero().flatten()
    return max(centre - int(reached.min()), int(reached.max()) - centre)


def test_attention_declarations_classify_the_paper_modules():
    # What the tiler is told: the spatial gates, PA and none are local; every channel gate pools.
    assert LOCAL_ATTENTION == ["msam", "msam_star", "none", "pa"]
    assert GLOBAL_ORIGINAL == {"drln": "la", "imdn": "cca", "rcan": "ca"}


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("name", WITH_SITES)
def test_receptive_radius_covers_the_exact_reach(name, scale):
    net = tiny(name, scale=scale)
    bound = receptive_radius(net)
    reach = exact_reach(net, bound, scale)
    # Safe, and exact for networks without parallel branches of different reach.
    assert reach <= bound <= reach + LOOSE_BY.get(name, 0), (bound, reach)


@pytest.mark.parametrize("name,attention", LOCAL_CONFIGS)
def test_tiled_equals_whole_image_for_local_networks(name, attention):
    net = tiny(name, attention)
    radius = receptive_radius(net)
    # Two tiles per axis, each with a seam whose context (radius pixels) ends inside the image.
    tile = radius + 2
    lr = torch.rand(1, 3, 2 * radius + 4, 2 * radius + 7)
    if name == "bicubic":
        lr = torch.rand(1, 3, 13, 17)
        tile = 5
    with torch.no_grad():
        whole, tiled = net(lr), tiled_forward(net, lr, tile)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-5


@pytest.mark.parametrize("attention", LOCAL_ATTENTION)
def test_tiled_equals_whole_image_for_every_local_attention(attention):
    net = tiny("edsr", attention)
    lr = torch.rand(1, 3, 26, 30)
    with torch.no_grad():
        assert (tiled_forward(net, lr, 10) - net(lr)).abs().max() < 1e-5


def test_overlap_below_the_radius_changes_the_output():
    """The overlap is needed: without it the seams differ (and exact mode refuses it)."""
    net = tiny("edsr")
    lr = torch.rand(1, 3, 24, 24)
    with torch.no_grad(), pytest.warns(UserWarning, match="below the receptive radius"):
        assert (tiled_forward(net, lr, 12, overlap=0, exact=False) - net(lr)).abs().max() > 1e-3
    with pytest.raises(NotTileableError, match=r"tile_overlap=2 is below the receptive radius 8 of edsr"):
        tiled_forward(net, lr, 12, overlap=2)


def test_tiles_bound_what_the_network_sees():
    net = tiny("imdn", scale=3)
    seen = []
    net.register_forward_pre_hook(lambda module, inputs: seen.append(tuple(inputs[0].shape[-2:])))
    lr = torch.rand(1, 3, 70, 45)
    radius = receptive_radius(net)
    seen.clear()
    with torch.no_grad():
        out = tiled_forward(net, lr, tile=16)
    assert out.shape == (1, 3, 210, 135)
    assert len(seen) == 5 * 3  # ceil(70 / 16) x ceil(45 / 16) tiles
    assert max(max(s) for s in seen) == 16 + 2 * radius < 45


@pytest.mark.parametrize("attention", GLOBAL_ATTENTION)
def test_global_pooling_attention_refuses_exact_tiling_and_warns_when_approximate(attention):
    # 64 features: 4 hidden units in the channel MLPs (with 16, the single ReLU unit can be dead).
    net = tiny("edsr", attention, n_feats=64)
    with torch.no_grad():  # strong gates, so that what they pool matters
        for p in net.att.parameters():
            p.mul_(4)
    # Dark on the left, bright on the right: each tile's global pool differs from the image's.
    lr = torch.linspace(0, 1, 30).expand(1, 3, 30, 30) * (0.5 + 0.5 * torch.rand(1, 3, 30, 30))
    with pytest.raises(NotTileableError, match=f"cannot be exact.*att \\({attention}:"):
        tiled_forward(net, lr, 10)
    with pytest.warns(UserWarning, match="approximation"), torch.no_grad():
        approx = tiled_forward(net, lr, 10, exact=False)
    # The refusal is not over-cautious: tiles do change the output, even with a full overlap.
    with torch.no_grad():
        assert (approx - net(lr)).abs().max() > 1e-4


@pytest.mark.parametrize("name", sorted(GLOBAL_ORIGINAL))
def test_networks_with_global_native_attention_refuse_exact_tiling(name):
    with pytest.raises(NotTileableError, match=GLOBAL_ORIGINAL[name]):
        tiled_forward(tiny(name, "original"), torch.rand(1, 3, 20, 20), 8)


class NearestColour(nn.Module):
    """Nearest-neighbour x2 then a 1x1 colour mix: equivariant to every flip and rotation."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.mix = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(self.up(x))


def test_self_ensemble_of_an_equivariant_network_is_the_network():
    torch.manual_seed(0)
    net, lr = NearestColour(), torch.rand(2, 3, 7, 10)
    with torch.no_grad():
        assert torch.allclose(self_ensemble(net, lr), net(lr), atol=1e-6)


def test_self_ensemble_of_a_constant_network_is_the_constant():
    constant = torch.rand(1, 3, 1, 1)
    out = self_ensemble(lambda x: constant.expand(1, 3, 2 * x.shape[-2], 2 * x.shape[-1]), torch.rand(1, 3, 5, 9))
    assert out.shape == (1, 3, 10, 18) and torch.allclose(out, constant.expand_as(out), atol=1e-7)


def test_self_ensemble_is_equivariant_for_any_network():
    net, lr = tiny("edsr", "bam"), torch.rand(1, 3, 9, 13)
    with torch.no_grad():
        ensemble = self_ensemble(net, lr)
        plain = net(lr)
        for k, flip in DIHEDRAL[1:]:
            turned = orient(lr, k, flip)
            assert torch.allclose(self_ensemble(net, turned), orient(ensemble, k, flip), atol=1e-5)
            # ... while the network alone is not: the check above has teeth.
            assert not torch.allclose(net(turned), orient(plain, k, flip), atol=1e-4)


def test_self_ensemble_over_tiles_equals_self_ensemble_of_the_whole_image():
    net, lr = tiny("pan", "original"), torch.rand(1, 3, 31, 22)
    with torch.no_grad():
        combined = Inference(self_ensemble=True, tile=12)(net, lr)
        assert (combined - self_ensemble(net, lr)).abs().max() < 1e-5
        assert (combined - net(lr)).abs().max() > 1e-4  # the ensemble does change the output


def test_inference_refuses_exact_tiles_before_running():
    calls = []
    net = tiny("rcan", "original")
    net.register_forward_pre_hook(lambda *a: calls.append(1))
    with pytest.raises(NotTileableError):
        Inference(self_ensemble=True, tile=8)(net, torch.rand(1, 3, 20, 20))
    assert calls == []


def test_self_ensemble_raises_psnr_of_official_imdn():
    """Official IMDN x4 on 48x48 LR crops of two Set5 images: x8 self-ensemble gains 0.09-0.10 dB
    (bird 35.474 -> 35.570, butterfly 29.915 -> 30.003)."""
    weights = need(WEIGHTS / "IMDN" / "IMDN_x4.pth", "official IMDN x4 weights")
    set5 = need(BENCHMARK / "Set5", "Set5")
    net = authors_net("imdn", 4, weights)
    for name in ("bird", "butterfly"):
        lr = to_float(read_image(set5 / "LR_bicubic" / "X4" / f"{name}x4.png"))[None]
        hr = to_float(read_image(set5 / "HR" / f"{name}.png"))[None]
        y, x = (lr.shape[-2] - 48) // 2, (lr.shape[-1] - 48) // 2
        lr, hr = lr[..., y : y + 48, x : x + 48], hr[..., 4 * y : 4 * (y + 48), 4 * x : 4 * (x + 48)]
        with torch.no_grad():
            plain, ensemble = psnr_y(net(lr), hr, 4), psnr_y(self_ensemble(net, lr), hr, 4)
        assert ensemble > plain + 0.03, (name, float(plain), float(ensemble))


def test_inference_options_are_validated():
    net = tiny("edsr")
    with pytest.raises(ValueError, match="tile must be a positive"):
        tiled_forward(net, torch.rand(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="N x C x H x W"):
        tiled_forward(net, torch.rand(3, 8, 8), 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact local tiling warns about nothing
        tiled_forward(net, torch.rand(1, 3, 8, 8), 4)


def test_lightning_module_scores_with_the_inference_options():
    from lit_sisr.metrics import psnr_ssim_y
    from lit_sisr.module import LitSR
    from lit_sisr.scoring import score_images

    net, lr, hr = tiny("edsr"), torch.rand(1, 3, 12, 10), torch.rand(1, 3, 24, 20)
    plain = LitSR(net, 2)
    ensemble = LitSR(net, 2, inference=Inference(self_ensemble=True, tile=8))
    # what test_step scores (lit_sisr.scoring, with the module's own options)
    psnr = lambda m: score_images(m.net, lr, hr, 2, m.protocol, m.inference)[1][:, 0]  # noqa: E731
    with torch.no_grad():
        assert torch.allclose(psnr(ensemble), psnr_ssim_y(self_ensemble(net, lr), hr, 2)[0].double(), atol=1e-4)
        assert not torch.allclose(psnr(ensemble), psnr(plain), atol=1e-4)
    # A plain option value: nothing new in the state dict or the saved hyper-parameters.
    assert ensemble.state_dict().keys() == plain.state_dict().keys()
    assert "inference" not in ensemble.hparams
