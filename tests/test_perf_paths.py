"""The fast paths give the same numbers as the plain ones: the decoded-image cache, whole-batch
patch loading, uint8 batches (device placement: tests/test_placement.py), the in-place BAM product, and each speed knob (CPU smoke).

No timing is asserted here: benchmarks/ prints the figures (docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, default_collate

from lit_sisr.attention import AttentionFactory
from lit_sisr.data.cache import DecodedCache
from lit_sisr.data.datasets import ImageSet, TrainPatches, five_crops
from lit_sisr.data.io import read_image
from lit_sisr.module import LitSR
from lit_sisr.protocols import standard_pair

from refdata import BENCHMARK, REPO, need


def save_png(path: Path, seed: int, shape=(40, 52)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture()
def hr_folder(tmp_path: Path) -> Path:
    for i in range(3):
        save_png(tmp_path / "hr" / f"img{i}.png", i, (40 + 4 * i, 52))
    return tmp_path / "hr"


def items(data, keys):
    return [data[k] for k in keys]


KEYS = [(i % 3, e) for i, e in zip(range(12), [0, 1, 2, 5] * 3)]


# -- decoded-image cache --------------------------------------------------------------------------
def test_cache_is_built_once_reused_and_gives_the_same_patches(hr_folder: Path, tmp_path: Path) -> None:
    images = ImageSet("t", str(hr_folder))
    plain = TrainPatches(images, scale=2, patch_size=8, seed=3)
    first = TrainPatches(images, scale=2, patch_size=8, seed=3, cache_dir=tmp_path / "cache")
    again = TrainPatches(images, scale=2, patch_size=8, seed=3, cache_dir=tmp_path / "cache")
    assert first.cache.stats == {"built": 6, "reused": 0}  # an HR and an LR entry per image
    assert again.cache.stats == {"built": 0, "reused": 6}
    assert len(list((tmp_path / "cache").glob("*.json"))) == 6
    for (lr0, hr0), (lr1, hr1) in zip(plain.pairs, again.pairs):
        assert torch.equal(lr0, lr1) and torch.equal(hr0, hr1)
    for a, b in zip(items(plain, KEYS), items(again, KEYS)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # memory-mapped, not loaded: the pages stay shared with the other processes
    arrays = again.cache.get(*again._entries[0][0], make=lambda: pytest.fail("rebuilt a valid entry"))
    assert all(isinstance(a, np.memmap) for a in arrays)


@pytest.mark.parametrize("five_crop", [False, True])
def test_scales_share_the_cached_hr_images(hr_folder: Path, tmp_path: Path, five_crop: bool) -> None:
    images = ImageSet("t", str(hr_folder))
    TrainPatches(images, scale=2, patch_size=4, five_crop=five_crop, cache_dir=tmp_path / "cache")
    x4 = TrainPatches(images, scale=4, patch_size=4, five_crop=five_crop, seed=5, cache_dir=tmp_path / "cache")
    assert x4.cache.stats == {"built": 3, "reused": 3}  # only the x4 LR images are new
    plain = TrainPatches(images, scale=4, patch_size=4, five_crop=five_crop, seed=5)
    for (lr0, hr0), (lr1, hr1) in zip(plain.pairs, x4.pairs):
        assert (
            torch.equal(lr0, lr1) and torch.equal(hr0, hr1) and hr1.shape[-2:] == (4 * lr1.shape[-2], 4 * lr1.shape[-1])
        )
    for a, b in zip(items(plain, KEYS), items(x4, KEYS)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # the pairs are those of the evaluation code path (protocols.standard_pair) on each HR (or crop)
    hrs = [crop for f in images.files() for crop in (five_crops(read_image(f)) if five_crop else [read_image(f)])]
    for (lr, hr), source in zip(x4.pairs, hrs):
        expected_lr, expected_hr = standard_pair(None, source, 4)
        assert torch.equal(lr, expected_lr) and torch.equal(hr, expected_hr)


def test_cache_rebuilds_when_a_source_changes(hr_folder: Path, tmp_path: Path) -> None:
    images = ImageSet("t", str(hr_folder))
    TrainPatches(images, scale=2, patch_size=8, cache_dir=tmp_path / "cache")
    changed = save_png(hr_folder / "img1.png", seed=99, shape=(44, 52))
    os.utime(changed, ns=(1, 1))  # a new mtime even on a coarse-clock file system
    data = TrainPatches(images, scale=2, patch_size=8, cache_dir=tmp_path / "cache")
    assert data.cache.stats == {"built": 2, "reused": 4}  # its HR and LR entries
    assert torch.equal(data.pairs[1][1], read_image(changed))


def test_cache_detects_corrupted_pixels(hr_folder: Path, tmp_path: Path) -> None:
    images = ImageSet("t", str(hr_folder))
    built = TrainPatches(images, scale=2, patch_size=8, cache_dir=tmp_path / "cache")
    manifest = built.cache.manifest_path(*built._entries[0][0])  # image 0's HR entry
    npy = tmp_path / "cache" / json.loads(manifest.read_text())["arrays"][0]["file"]
    arr = np.load(npy)
    arr[:, 0, :] ^= 0xFF  # row 0 is in the sampled checksum
    np.save(npy, arr)
    again = TrainPatches(images, scale=2, patch_size=8, cache_dir=tmp_path / "cache")
    assert again.cache.stats == {"built": 1, "reused": 5}
    assert torch.equal(again.pairs[0][1], read_image(hr_folder / "img0.png"))
    # a change outside the sampled rows is caught by the full check
    arr = np.load(npy)
    arr[:, 1, :] ^= 0xFF
    np.save(npy, arr)
    full = DecodedCache(tmp_path / "cache", verify="full")
    assert full.get(*built._entries[0][0], make=lambda: [np.zeros((3, 2, 2), np.uint8)])[0].shape == (3, 2, 2)
    assert full.stats == {"built": 1, "reused": 0}


# -- whole batches and uint8 batches ----------------------------------------------------------------
@pytest.mark.parametrize("five_crop", [False, True])
def test_whole_batch_equals_item_by_item(hr_folder: Path, tmp_path: Path, five_crop: bool) -> None:
    images = ImageSet("t", str(hr_folder))
    data = TrainPatches(images, scale=3, patch_size=6, five_crop=five_crop, seed=7, cache_dir=tmp_path / "c")
    levels = TrainPatches(images, scale=3, patch_size=6, five_crop=five_crop, seed=7, dtype="uint8")
    keys = [(i % len(data), e) for i, e in zip(range(16), [0, 3] * 8)]
    expected = default_collate(items(data, keys))
    batched = data[keys]  # what the training DataLoader asks for (batch_size=None, a batch sampler)
    assert all(torch.equal(a, b) for a, b in zip(expected, batched))
    lr8, hr8 = levels[keys]
    assert lr8.dtype == torch.uint8 and torch.equal(lr8.float() / 255, expected[0])
    assert torch.equal(hr8.float() / 255, expected[1])


def test_bad_dtype_and_cache_options_are_named(hr_folder: Path) -> None:
    with pytest.raises(ValueError, match="dtype='float16'"):
        TrainPatches(ImageSet("t", str(hr_folder)), scale=2, patch_size=8, dtype="float16")
    from lit_sisr.data.datamodule import SRDataModule

    with pytest.raises(ValueError, match="data.cache_dir"):
        SRDataModule("t", 2, {"name": "a", "hr_dir": "x"}, {"name": "b", "hr_dir": "y"}, cache=True)


# -- BAM: the fast product equals the formula ---------------------------------------------------------
@pytest.mark.parametrize("name", ["bam", "bam_star", "cbam"])
def test_attention_fast_path_equals_the_reference(name: str) -> None:
    torch.manual_seed(0)
    module = AttentionFactory(name)(32)
    x = torch.randn(2, 32, 9, 7, requires_grad=True)

    def channel(gate, x):  # sigma(sum over poolings of the shared MLP)
        pooled = {"avg": x.mean((2, 3), keepdim=True), "max": x.amax((2, 3), keepdim=True)}
        return torch.sigmoid(sum(gate.fc2(gate.act(gate.fc1(pooled[p]))) for p in gate.pools))

    def spatial(gate, x):  # sigma(7x7 conv over the channel poolings)
        pooled = {"avg": x.mean(1, keepdim=True), "max": x.amax(1, keepdim=True)}
        return torch.sigmoid(gate.conv(torch.cat([pooled[p] for p in gate.pools], 1)))

    def reference(x: torch.Tensor) -> torch.Tensor:
        if name == "cbam":  # sequential
            y = x * channel(module.ca, x)
            return y * spatial(module.sa, y)
        return x * (channel(module.ca, x) * spatial(module.sa, x))  # the outer product of the maps

    with torch.no_grad():
        torch.testing.assert_close(module(x), reference(x), rtol=1e-6, atol=1e-6)
    out, ref = module(x), reference(x)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, g)
    (grad_ref,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the in-place product leaves its input alone
        before = x.detach().clone()
        module(x)
        assert torch.equal(x, before)


# -- speed knobs: a 2-step CPU smoke each ----------------------------------------------------------
class TinySR(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1))
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.body(x))


class Loss(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.mark.parametrize(
    "knob",
    [
        {"precision": "bf16-mixed"},
        {"channels_last": True},
        {"compile": True},
        {"benchmark": True},
        {"uint8": True},
    ],
)
def test_speed_knob_trains_two_steps_with_finite_loss(knob: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    lr, hr = torch.rand(6, 3, 8, 8), torch.rand(6, 3, 16, 16)
    if knob.get("uint8"):
        lr, hr = (lr * 255).round().to(torch.uint8), (hr * 255).round().to(torch.uint8)
    model = LitSR(TinySR(), scale=2, channels_last=knob.get("channels_last", False), compile=knob.get("compile", False))
    keys = list(model.net.state_dict())
    loss = Loss()
    trainer = pl.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[loss],
        precision=knob.get("precision", "32-true"),
        benchmark=knob.get("benchmark"),
        default_root_dir=tmp_path,
    )
    trainer.fit(model, DataLoader(list(zip(lr, hr)), batch_size=3))
    assert len(loss.losses) == 2 and all(np.isfinite(loss.losses))
    assert list(model.net.state_dict()) == keys  # checkpoints stay loadable into an eager network
    if knob.get("channels_last"):
        assert model.net.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    if knob.get("uint8"):  # levels / 255 on the device, as the float path
        batch = model.on_after_batch_transfer([lr[:1], hr[:1]], 0)
        assert batch[0].dtype == torch.float32 and torch.equal(batch[0], lr[:1].float() / 255)


def test_train_config_exposes_the_knobs() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "conf" / "train.yaml")
    assert cfg.channels_last is False and cfg.compile is False
    for name in ("demo", "div2k", "t91"):
        data = OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml")
        assert data.cache is True and data.train_dtype == "uint8" and data.placement == "auto"


# -- a benchmark script end to end, with tiny arguments ---------------------------------------------
def test_data_path_benchmark_prints_a_table(tmp_path: Path, capsys, monkeypatch) -> None:
    need(BENCHMARK / "Set5", "Set5")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import data_path
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "data_path.py",
            "--data",
            str(BENCHMARK.parent),
            "--set",
            "Set5",
            "--scales",
            "4",
            "--workers",
            "0",
            "--batches",
            "1",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--batch",
            "2",
            "--patch",
            "16",
            "--cache-dir",
            str(tmp_path),
            "--device",
            "cpu",
        ],
    )
    data_path.main()
    out = capsys.readouterr().out
    assert "| x4 | 0 | naive |" in out and "| x4 | 0 | host |" in out and "| x4 | - | device |" in out
    assert "load average" in out
