"""Datasets: patch geometry, identical LR/HR augmentation, five crops, file errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lit_sisr.data.datasets import ImageSet, PairedImages, TrainPatches, five_crops, load_pair
from lit_sisr.data.demo import SPLITS, ensure_demo_images
from lit_sisr.data.io import ImageError, read_image
from lit_sisr.data.samplers import EpochSampler
from lit_sisr.resize import bicubic_downscale

from refdata import BENCHMARK, need


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.fixture()
def hr_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(50, 62), (41, 45), (64, 48)]):
        save(tmp_path / "hr" / f"img{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return tmp_path / "hr"


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The 8 flips/rotations, indexed 0..7."""
    x = x.flip(-1) if k & 1 else x
    x = x.flip(-2) if k & 2 else x
    return x.rot90(1, (-2, -1)) if k & 4 else x


def test_patches_are_aligned_and_augmented_identically(hr_folder: Path) -> None:
    plain = TrainPatches(ImageSet("t", str(hr_folder)), scale=3, patch_size=8, augment=False, seed=5)
    aug = TrainPatches(ImageSet("t", str(hr_folder)), scale=3, patch_size=8, augment=True, seed=5)
    used = set()
    for index in range(len(plain)):
        for epoch in range(4):
            lr0, hr0 = plain[(index, epoch)]
            lr1, hr1 = aug[(index, epoch)]
            assert lr0.shape == (3, 8, 8) and hr0.shape == (3, 24, 24)
            # the un-augmented HR patch sits exactly over its LR patch: LR = bicubic(HR) away from borders
            k = next(k for k in range(8) if torch.equal(dihedral(lr0, k), lr1))
            assert torch.equal(dihedral(hr0, k), hr1)
            used.add(k)
    assert len(used) >= 4  # augmentation really varies


def test_patch_location_matches_hr_geometry(hr_folder: Path) -> None:
    data = TrainPatches(ImageSet("t", str(hr_folder)), scale=2, patch_size=6, augment=False)
    full_lr, full_hr = data.pairs[0]
    lr, hr = data[(0, 3)]
    lr8, hr8 = (lr * 255).round().to(torch.uint8), (hr * 255).round().to(torch.uint8)
    ys, xs = [
        (y, x)
        for y in range(full_lr.shape[1] - 5)
        for x in range(full_lr.shape[2] - 5)
        if torch.equal(full_lr[:, y : y + 6, x : x + 6], lr8)
    ][0]
    assert torch.equal(full_hr[:, ys * 2 : (ys + 6) * 2, xs * 2 : (xs + 6) * 2], hr8)


def test_items_are_a_function_of_seed_epoch_and_index(hr_folder: Path) -> None:
    a = TrainPatches(ImageSet("t", str(hr_folder)), scale=2, patch_size=8, seed=1)
    b = TrainPatches(ImageSet("t", str(hr_folder)), scale=2, patch_size=8, seed=1)
    assert torch.equal(a[(1, 7)][0], b[(1, 7)][0])
    assert not torch.equal(a[(1, 7)][0], a[(1, 8)][0])


def test_epoch_sampler_yields_index_and_epoch() -> None:
    sampler = EpochSampler(range(10), num_replicas=1, rank=0, shuffle=True, seed=0)
    sampler.set_epoch(3)
    items = list(sampler)
    assert sorted(i for i, _ in items) == list(range(10)) and {e for _, e in items} == {3}


def test_five_crops_expand_the_set_five_times(hr_folder: Path) -> None:
    img = torch.arange(10 * 12).view(1, 10, 12).expand(3, -1, -1)
    crops = five_crops(img)
    assert [c.shape[-2:] for c in crops] == [(5, 6)] * 5
    assert crops[0][0, 0, 0] == img[0, 0, 0] and crops[3][0, -1, -1] == img[0, -1, -1]
    assert torch.equal(crops[4], img[:, 2:7, 3:9])
    data = TrainPatches(ImageSet("t", str(hr_folder)), scale=2, patch_size=8, five_crop=True)
    assert len(data) == 15


def test_lr_folder_pairs_and_hr_crop(tmp_path: Path, hr_folder: Path) -> None:
    hr_path = hr_folder / "img1.png"  # 41 x 45: not a multiple of 2
    lr = bicubic_downscale(read_image(hr_path)[None].float(), 2)[0].to(torch.uint8)
    save(tmp_path / "lr" / "img1x2.png", lr.permute(1, 2, 0).numpy())
    lr_read, hr = load_pair(hr_path, str(tmp_path / "lr"), 2)
    assert torch.equal(lr_read, lr) and hr.shape[-2:] == (40, 44)


def test_mismatched_lr_size_names_the_file(tmp_path: Path, hr_folder: Path) -> None:
    save(tmp_path / "lr" / "img0x2.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(
        ImageError, match=r"img0x2\.png: LR 10x10 does not match HR .*img0\.png \(50x62\) at scale 2; expected LR 25x31"
    ):
        load_pair(hr_folder / "img0.png", str(tmp_path / "lr"), 2)


def test_missing_lr_file_names_it(tmp_path: Path, hr_folder: Path) -> None:
    (tmp_path / "lr").mkdir()
    with pytest.raises(ImageError, match=r"img0\.png: no LR image img0x4\.png"):
        load_pair(hr_folder / "img0.png", str(tmp_path / "lr"), 4)


def test_bad_folders_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data folder not found: .*nowhere"):
        ImageSet("x", str(tmp_path / "nowhere")).files()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images .* in .*empty"):
        ImageSet("x", str(tmp_path / "empty")).files()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageError, match="bad.png: unreadable or truncated image"):
        read_image(bad)
    sixteen = save(tmp_path / "deep.png", np.zeros((4, 4), np.uint16))
    with pytest.raises(ImageError, match="deep.png: I;16 image"):
        read_image(sixteen)


def test_grey_and_rgba_become_rgb(tmp_path: Path) -> None:
    grey = read_image(save(tmp_path / "g.png", np.full((3, 4), 9, np.uint8)))
    assert grey.shape == (3, 3, 4) and int(grey[2, 0, 0]) == 9
    rgba = read_image(save(tmp_path / "a.png", np.full((3, 4, 4), 200, np.uint8)))
    assert rgba.shape == (3, 3, 4)


def test_lr_smaller_than_the_patch_is_an_error(hr_folder: Path) -> None:
    with pytest.raises(ImageError, match="img0.png: LR size .* smaller than the training patch 40"):
        TrainPatches(ImageSet("t", str(hr_folder)), scale=2, patch_size=40)


def test_split_selects_disjoint_files(hr_folder: Path) -> None:
    train = ImageSet("a", str(hr_folder), split=[0, 2]).files()
    val = ImageSet("b", str(hr_folder), split=[2, 3]).files()
    assert [p.name for p in train] == ["img0.png", "img1.png"] and [p.name for p in val] == ["img2.png"]


def test_benchmark_pairs_crop_hr_to_lr_times_scale() -> None:
    root = need(BENCHMARK / "Set14", "benchmark Set14")
    data = PairedImages(ImageSet("Set14", str(root / "HR"), str(root / "LR_bicubic" / "X3")), 3)
    assert len(data) == 14
    for i in range(len(data)):
        lr, hr, idx = data[i]
        assert hr.shape[0] == 3 and hr.shape[-2:] == (lr.shape[-2] * 3, lr.shape[-1] * 3) and idx == i


def test_demo_images_ship_with_scikit_image(tmp_path: Path) -> None:
    root = ensure_demo_images(tmp_path / "demo")
    for split, names in SPLITS.items():
        assert sorted(p.stem for p in (root / split).glob("*.png")) == sorted(names)
    assert not set(SPLITS["val"]) & set(SPLITS["test"]) and not set(SPLITS["train"]) & set(SPLITS["test"])
