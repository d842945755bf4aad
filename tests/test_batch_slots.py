"""Worker batches through reusable shared-memory slots (lit_sisr.data.batch_slots) are the same
batches as the main process makes, are never overwritten while the consumer holds them, and free
their slot when dropped. No timing here: benchmarks/data_path.py measures the speed."""
from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lit_sisr.data.batch_slots import BatchSlots, SlotBatch
from lit_sisr.data.datamodule import SRDataModule
from lit_sisr.data.datasets import ImageSet, TrainPatches, collate_patches
from lit_sisr.data.samplers import EpochSampler

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> TrainPatches:
    folder = tmp_path_factory.mktemp("hr")
    for i in range(3):
        rgb = np.random.default_rng(i).integers(0, 256, (36 + 4 * i, 44, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"img{i}.png")
    return TrainPatches(ImageSet("t", str(folder)), scale=2, patch_size=8, repeat=8, dtype="uint8")


def loader(data: TrainPatches, slots: BatchSlots | None, workers: int, **kwargs) -> DataLoader:
    data.batch_slots = slots  # as SRDataModule does
    sampler = EpochSampler(data, num_replicas=1, rank=0, shuffle=True, seed=1, drop_last=True)
    return DataLoader(data, batch_size=4, sampler=sampler, collate_fn=collate_patches, num_workers=workers, **kwargs)


def send(slots: BatchSlots, tensors: list[torch.Tensor]):
    """What a worker does: fill a reserved slot, or fall back to sending the tensors."""
    reserved = slots.reserve([(t.shape, t.dtype) for t in tensors])
    if reserved is None:
        return tensors
    regions, message = reserved
    for region, t in zip(regions, tensors):
        region.copy_(t)
    return message


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_slot_batches_equal_main_process_batches_and_free_their_slots(patches: TrainPatches, dtype: str) -> None:
    data = TrainPatches.__new__(TrainPatches)
    data.__dict__.update(patches.__dict__, dtype=dtype)
    expected = list(loader(data, None, 0))
    slots = BatchSlots(6, data.batch_nbytes(4))
    got = []
    for lr, hr in loader(data, slots, 2):
        got.append((lr.clone(), hr.clone()))
        assert lr.dtype == getattr(torch, dtype) and lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16)
    assert len(expected) == 6 and same(got, expected)
    assert slots.stats() == {"slot": 6, "fallback": 0}  # every batch came through a slot
    assert slots.in_flight() == 1  # the last batch, still held by lr and hr
    del lr, hr
    assert slots.in_flight() == 0  # dropped batches gave their slots back


def test_batches_the_consumer_keeps_are_never_overwritten(patches: TrainPatches) -> None:
    # Two slots for six batches, all kept: the rest must take the slow path, not reuse a held slot.
    expected = list(loader(patches, None, 0))
    slots = BatchSlots(2, patches.batch_nbytes(4))
    kept = list(loader(patches, slots, 2))
    assert same(kept, expected)
    stats = slots.stats()
    assert stats["slot"] == 2 and stats["fallback"] == 4
    del kept
    gc.collect()
    assert slots.in_flight() == 0


def test_spawned_workers_receive_the_slots(patches: TrainPatches) -> None:
    expected = list(loader(patches, None, 0))
    slots = BatchSlots(4, patches.batch_nbytes(4), context="spawn")
    got = [(lr.clone(), hr.clone()) for lr, hr in loader(patches, slots, 1, multiprocessing_context="spawn")]
    assert same(got, expected) and slots.stats()["slot"] == 6


def finished_pid() -> int:
    process = multiprocessing.get_context("fork").Process(target=int)
    process.start()
    process.join()
    return process.pid


def test_slots_of_dead_workers_are_reclaimed_and_held_ones_are_not() -> None:
    batch = [torch.arange(10, dtype=torch.uint8)]
    slots = BatchSlots(1, 64)
    slots.owner[0] = os.getpid()  # held by a live process (a consumer): no slot for a new batch
    assert send(slots, batch) == batch and slots.stats() == {"slot": 0, "fallback": 1}
    slots.owner[0] = finished_pid()  # filled by a worker that died before the batch was received
    sent = send(slots, batch)
    assert isinstance(sent, SlotBatch) and slots.stats()["slot"] == 1
    (received,) = pickle.loads(pickle.dumps(sent))  # what the DataLoader's main process does
    assert torch.equal(received, batch[0]) and slots.in_flight() == 1
    del received
    assert slots.in_flight() == 0


def test_a_lease_inherited_by_another_process_does_not_free_the_slot(monkeypatch) -> None:
    slots = BatchSlots(1, 64)
    (received,) = pickle.loads(pickle.dumps(send(slots, [torch.ones(4)])))
    parent = os.getpid()
    monkeypatch.setattr("lit_sisr.data.batch_slots.os.getpid", lambda: parent + 1)  # as in a forked child
    del received
    assert slots.in_flight() == 1


def test_too_large_batches_take_the_slow_path() -> None:
    slots = BatchSlots(2, 16)
    batch = [torch.zeros(100, dtype=torch.uint8)]  # slots hold 64 bytes (16 rounded up to the alignment)
    assert slots.reserve([(batch[0].shape, batch[0].dtype)]) is None and slots.stats() == {"slot": 0, "fallback": 1}
    with pytest.raises(ValueError, match="count >= 1"):
        BatchSlots(0, 16)


def test_unknown_slots_are_named_on_arrival() -> None:
    sent = pickle.dumps(send(BatchSlots(1, 64), [torch.ones(2)]))
    gc.collect()  # the slots are gone from this process
    with pytest.raises(RuntimeError, match="BatchSlots must be created in the process that iterates"):
        pickle.loads(sent)


def test_datamodule_sends_worker_batches_through_slots(patches: TrainPatches) -> None:
    module = SRDataModule("t", 2, {"name": "a", "hr_dir": "x"}, {"name": "b", "hr_dir": "y"}, batch_size=4,
                          num_workers=2)
    module.train_data = patches
    train = module.train_dataloader()
    slots = patches.batch_slots
    assert train.collate_fn is collate_patches and slots.buffer.shape[0] == 2 * 2 + 3
    batches = [(lr.clone(), hr.clone()) for lr, hr in train]
    assert len(batches) == 6 and slots.stats() == {"slot": 6, "fallback": 0}
    module.num_workers = 0
    module.train_dataloader()
    assert patches.batch_slots is None
