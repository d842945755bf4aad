"""data.placement: batches cut on the device (here device=cpu) are bit-identical to the host path's,
batch for batch, with and without five crops, per DDP rank, and after skipping a resumed epoch's
first batches; the host path gives the same batches with and without DataLoader workers. No timing
here: benchmarks/data_path.py measures the speed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lit_sisr.data.datamodule import SRDataModule
from lit_sisr.data.datasets import ImageSet, TrainPatches, dihedral
from lit_sisr.data.placement import DevicePatches, choose_placement, cut_patches
from lit_sisr.data.samplers import EpochBatchSampler, EpochSampler, ResumableLoader

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hr")
    for i, (h, w) in enumerate([(40, 52), (47, 45), (60, 38)]):  # odd sizes: HR pairs are cropped views
        rgb = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"img{i}.png")
    return folder


def host_batches(data: TrainPatches, sampler: EpochSampler, batch_size: int, workers: int = 0, **kwargs) -> list:
    loader = ResumableLoader(
        data, batch_size=None, sampler=EpochBatchSampler(sampler, batch_size), num_workers=workers, **kwargs
    )
    return list(loader)


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q)
    )


@pytest.mark.parametrize(
    ("five_crop", "scale", "dtype"), [(False, 3, "uint8"), (True, 2, "uint8"), (False, 4, "float32")]
)
def test_device_batches_equal_host_batches(
    hr_folder: Path, tmp_path: Path, five_crop: bool, scale: int, dtype: str
) -> None:
    data = TrainPatches(
        ImageSet("t", str(hr_folder)),
        scale=scale,
        patch_size=5 if five_crop else 8,
        five_crop=five_crop,
        repeat=6,
        seed=4,
        cache_dir=tmp_path / "cache",
        dtype=dtype,
    )
    for epoch in (0, 3):
        sampler = EpochSampler(data, num_replicas=1, rank=0, shuffle=True, seed=4, drop_last=True)
        sampler.set_epoch(epoch)
        host = host_batches(data, sampler, 4)
        device = list(DevicePatches(data, sampler, 4, "cpu"))
        assert len(host) == len(DevicePatches(data, sampler, 4, "cpu")) == -(-len(data) // 4)
        assert host[-1][0].shape[0] == (len(data) % 4 or 4)  # a short last batch is kept
        assert same(device, host)
        # the flips vary (each of the 8 cases: the next test), and batches hold the items themselves
        flips = data.draws(list(sampler))[:, 3:].tolist()
        assert len({tuple(f) for f in flips}) >= 4
        assert torch.equal(host[1][1][2], data[list(sampler)[6]][1])
    lr, hr = host[0]
    p = data.patch_size
    assert lr.shape == (4, 3, p, p) and hr.shape == (4, 3, p * scale, p * scale) and lr.dtype == getattr(torch, dtype)


@pytest.mark.parametrize("bits", [(h, v, r) for h in (0, 1) for v in (0, 1) for r in (0, 1)])
def test_gather_equals_dihedral_for_every_flip_and_rotation(bits: tuple[int, int, int]) -> None:
    image = torch.randint(0, 256, (3, 30, 41), dtype=torch.uint8)
    flat, geometry = image.reshape(-1), torch.tensor([[0, 41, 30 * 41]])
    draws = torch.tensor([[0, 3, 5, *bits]])
    got = cut_patches(flat, geometry, draws, 20, scale=2)[0]  # an HR patch of a 10 px LR patch at (3, 5)
    assert torch.equal(got, dihedral(image[:, 6:26, 10:30], *bits))


def test_each_ddp_rank_draws_its_own_shard_on_its_own_copy(hr_folder: Path) -> None:
    data = TrainPatches(ImageSet("t", str(hr_folder)), scale=2, patch_size=8, repeat=8, seed=1, dtype="uint8")
    shards = []
    for rank in (0, 1):
        sampler = EpochSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=1, drop_last=True)
        device = DevicePatches(data, sampler, 3, "cpu")
        assert device.nbytes == data.nbytes  # the whole set on every rank
        assert same(list(device), host_batches(data, sampler, 3))
        shards.append({i for i, _ in sampler})
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == len(data)


def test_a_resumed_epoch_continues_with_the_next_batch(hr_folder: Path) -> None:
    data = TrainPatches(ImageSet("t", str(hr_folder)), scale=2, patch_size=8, repeat=4, dtype="uint8")
    whole = list(DevicePatches(data, EpochSampler(data, 1, 0, seed=0, batch_size=2, position=lambda: (1, 0)), 2, "cpu"))
    resumed = DevicePatches(data, EpochSampler(data, 1, 0, seed=0, batch_size=2, position=lambda: (1, 3)), 2, "cpu")
    assert same(list(resumed), whole[3:]) and resumed.state_dict() == {"epoch": 1, "batches_done": 3}
    assert len(resumed) == len(whole) == 6  # Lightning counts the skipped batches itself


@pytest.mark.parametrize("context", [None, "spawn"])
def test_worker_batches_equal_main_process_batches(hr_folder: Path, tmp_path: Path, context: str | None) -> None:
    data = TrainPatches(
        ImageSet("t", str(hr_folder)), scale=2, patch_size=8, repeat=4, cache_dir=tmp_path / "c", dtype="uint8"
    )
    sampler = EpochSampler(data, num_replicas=1, rank=0, shuffle=True, seed=1, drop_last=True)
    main = host_batches(data, sampler, 4)
    workers = host_batches(data, sampler, 4, workers=1 if context else 2, multiprocessing_context=context)
    assert len(main) == 3 and same(workers, main)


def test_datamodule_places_the_data_as_asked(hr_folder: Path) -> None:
    spec = {"name": "t", "hr_dir": str(hr_folder)}
    module = SRDataModule(
        "t", 2, spec, spec, patch_size=8, batch_size=4, num_workers=2, placement="auto", train_dtype="uint8"
    )
    module.setup("fit")
    host = module.train_dataloader()
    assert module.placed == "host" and isinstance(host, ResumableLoader) and host.num_workers == 2  # auto on a CPU
    module.placement = "device"
    device = module.train_dataloader()
    assert module.placed == "device" and isinstance(device, DevicePatches) and same(list(device), list(host))


def test_bad_placements_are_named() -> None:
    with pytest.raises(ValueError, match=r"data.placement='gpu': expected one of device, host, auto"):
        choose_placement("gpu", torch.device("cpu"), 0, 0.5)
    with pytest.raises(ValueError, match=r"data.device_memory_share=0: expected a fraction in \(0, 1\]"):
        SRDataModule("t", 2, {"name": "a", "hr_dir": "x"}, {"name": "b", "hr_dir": "y"}, device_memory_share=0)
    assert choose_placement("auto", torch.device("cpu"), 1, 1.0) == "host"
    assert choose_placement("device", torch.device("cpu"), 1, 1.0) == "device"
