"""MATLAB-exact bicubic: the shared benchmark LR files are reproduced bit for bit."""

from __future__ import annotations

import pytest
import torch

from lit_sisr.data.io import read_image
from lit_sisr.resize import _symmetric_index, bicubic_downscale, bicubic_upscale, imresize, modcrop

from refdata import BENCHMARK, need


def test_symmetric_padding_repeats_the_edge_sample() -> None:
    assert _symmetric_index(4, 3, torch.device("cpu")).tolist() == [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]
    # padding wider than the axis keeps folding
    assert _symmetric_index(2, 3, torch.device("cpu")).tolist() == [1, 1, 0, 0, 1, 1, 0, 0]


def test_sizes_follow_matlab() -> None:
    img = torch.rand(1, 3, 13, 10) * 255
    assert modcrop(img, 3).shape[-2:] == (12, 9)
    assert bicubic_downscale(img, 3).shape[-2:] == (4, 3)
    assert bicubic_upscale(img, 3).shape[-2:] == (39, 30)
    with pytest.raises(ValueError, match="modcrop first"):
        imresize(img, 1 / 3)


def test_constant_image_stays_constant_and_output_is_uint8_levels() -> None:
    img = torch.full((1, 3, 12, 12), 77.0)
    assert torch.equal(bicubic_downscale(img, 4), torch.full((1, 3, 3, 3), 77.0))
    up = bicubic_upscale(torch.rand(1, 1, 5, 5) * 255, 2)
    assert torch.equal(up, up.round()) and up.min() >= 0 and up.max() <= 255


def test_every_shared_lr_file_is_reproduced_bit_for_bit() -> None:
    root = need(BENCHMARK, "benchmark sets")
    checked = 0
    for scale in (2, 3, 4):
        for hr_path in sorted(root.glob("*/HR/*.png")):
            lr_path = hr_path.parent.parent / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
            lr = bicubic_downscale(read_image(hr_path)[None].float(), scale)[0].to(torch.uint8)
            assert torch.equal(lr, read_image(lr_path)), lr_path
            checked += 1
    assert checked == 357  # Set5 + Set14 + B100 = 119 images, at x2, x3, x4
