"""The metric protocol: unit checks, and the golden table of shared/spec/protocol.md."""

from __future__ import annotations

import kornia
import pytest
import torch

from lit_sisr.backbones import build_backbone
from lit_sisr.data.testsets import named_sets
from lit_sisr.metrics import prepare_y, psnr_y, quantize, rgb_to_y, ssim_of_y, ssim_y
from lit_sisr.scoring import evaluate_set, mean_metrics

from helpers import GOLDEN
from refdata import BENCHMARK, need


def test_y_is_matlab_rgb2ycbcr() -> None:
    rgb = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.2, 0.4, 0.6]]).T.reshape(1, 3, 4, 1)
    y = rgb_to_y(rgb).flatten().tolist()
    assert y == pytest.approx([16.0, 235.0, 16 + 65.481, 16 + 0.2 * 65.481 + 0.4 * 128.553 + 0.6 * 24.966])


def test_sr_is_clamped_and_rounded_to_8_bit_levels() -> None:
    x = torch.tensor([-0.2, 0.5, 1.3, 100.4 / 255, 100.6 / 255])
    assert (quantize(x) * 255).tolist() == pytest.approx([0, 128, 255, 100, 101])


def test_psnr_is_per_image_and_borders_are_shaved() -> None:
    torch.manual_seed(0)
    hr = torch.randint(0, 256, (2, 3, 20, 20)) / 255  # HR images are on 8-bit levels
    sr = hr.clone()
    sr[0, :, 5:15, 5:15] += 10 / 255  # inside the shaved region: counted
    sr[1, :, :2, :] += 0.5  # only in the 2-pixel border: shaved away
    psnr = psnr_y(sr, hr, scale=2)
    assert torch.isinf(psnr[1]) or psnr[1] > 100
    sr_y, hr_y = prepare_y(sr[:1], hr[:1], 2)
    mse = ((sr_y - hr_y) ** 2).mean()
    # torchmetrics converts with a float32 ln(10): within 1e-5 dB of the float64 formula
    assert float(psnr[0]) == pytest.approx(float(10 * torch.log10(255**2 / mse)), abs=1e-5)


def test_hr_is_cropped_top_left_to_the_sr_size() -> None:
    hr = torch.randint(0, 256, (1, 3, 21, 23)) / 255
    assert ssim_y(hr[..., :20, :22], hr, 2).item() == pytest.approx(1.0)


def kornia_ssim(sr_y: torch.Tensor, hr_y: torch.Tensor) -> torch.Tensor:
    return kornia.metrics.ssim(sr_y, hr_y, window_size=11, max_val=255.0, padding="valid").mean(dim=(1, 2, 3))


@pytest.mark.parametrize("shape", [(1, 1, 11, 11), (2, 1, 37, 52), (1, 1, 313, 473)])
def test_separable_ssim_equals_kornia_ssim(shape) -> None:
    # Our float64 filter is only faster: the figure must be kornia's (the MATLAB ssim.m recipe).
    torch.manual_seed(sum(shape))
    hr_y = 16 + 219 * torch.rand(shape, dtype=torch.float64)
    sr_y = (hr_y + 12 * torch.randn(shape, dtype=torch.float64)).clamp(16, 235)
    flat = torch.full(shape, 100.0, dtype=torch.float64)  # zero variance: the constants carry it
    for a, b in [(sr_y, hr_y), (hr_y, hr_y), (flat, hr_y), (flat, flat + 1)]:
        assert torch.allclose(ssim_of_y(a, b), kornia_ssim(a, b), rtol=0, atol=1e-12)


def test_ssim_on_benchmark_images_equals_kornia_ssim() -> None:
    need(BENCHMARK / "Set5", "benchmark Set5")
    from lit_sisr.data.datasets import PairedImages

    bicubic = build_backbone("bicubic", 4)
    (images,) = named_sets(["Set5"], str(BENCHMARK), 4)
    data = PairedImages(images, 4)
    assert data.lr_source == "stored"
    for lr, hr, _ in data:
        sr_y, hr_y = prepare_y(bicubic(lr[None]), hr[None], 4)
        assert abs(float(ssim_of_y(sr_y, hr_y)) - float(kornia_ssim(sr_y, hr_y))) < 1e-12


def test_ssim_names_bad_shapes() -> None:
    y = torch.zeros(1, 1, 20, 20, dtype=torch.float64)
    with pytest.raises(ValueError, match="one shape"):
        ssim_of_y(y, y[..., :19])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_of_y(y[..., :10, :], y[..., :10, :])


@pytest.mark.parametrize("set_name,scale", list(GOLDEN))
def test_bicubic_model_matches_the_golden_table(set_name: str, scale: int) -> None:
    need(BENCHMARK / set_name, f"benchmark {set_name}")
    (images,) = named_sets([set_name], str(BENCHMARK), scale)
    psnr, ssim = mean_metrics(evaluate_set(build_backbone("bicubic", scale), images, scale))
    golden_psnr, golden_ssim = GOLDEN[(set_name, scale)]
    assert psnr == pytest.approx(golden_psnr, abs=0.005)
    assert ssim == pytest.approx(golden_ssim, abs=0.0003)
