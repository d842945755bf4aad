"""Atomic writes: a process killed while it saves leaves the previous file whole and loadable."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_sisr.atomic import atomic_write_text
from lit_sisr.checkpoint_io import AtomicCheckpointIO
from lit_sisr.outputs import write_results

N = 6_000_000  # 24 MB of float32 per checkpoint: each save takes long enough to be hit mid-write


def checkpoint(version: int) -> dict:
    # numpy, not torch ops: the forked writer must not touch the parent's intra-op thread pool
    return {"global_step": version, "state_dict": {"w": torch.from_numpy(np.full(N, version, dtype=np.float32))}}


def keep_saving(path: str, first: int) -> None:
    io, version = AtomicCheckpointIO(), first
    while True:
        io.save_checkpoint(checkpoint(version), path)
        version += 1


def load(path: Path) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    w = state["state_dict"]["w"]
    assert w.numel() == N and float(w[0]) == float(w[-1]) == state["global_step"]  # whole, not a mix
    return state["global_step"]


def test_sigkill_during_checkpoint_saves_keeps_the_previous_file(tmp_path: Path) -> None:
    from pytorch_lightning.callbacks import ModelCheckpoint

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(checkpoint(0), path)
    fork = multiprocessing.get_context("fork")
    rng = random.Random(0)
    version, mid_write = 0, 0
    for attempt in range(20):
        writer = fork.Process(target=keep_saving, args=(str(path), version + 1), daemon=True)
        writer.start()
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        assert writer.exitcode == -signal.SIGKILL
        temporaries = list(tmp_path.glob(".last.ckpt.*.tmp"))
        mid_write += bool(temporaries)  # killed while writing: a partial temporary is left behind
        now = load(path)  # the target is always a complete checkpoint, never a partial one
        assert now >= version
        version = now
        # Lightning's ckpt_path="last" lookup sees only the real file, not the partial temporary
        assert ModelCheckpoint(dirpath=str(tmp_path))._find_last_checkpoints(None) == {str(path)}
        if mid_write >= 3 and version >= 2:
            break
    assert mid_write >= 3 and version >= 2, (mid_write, version)  # the kills did hit writes, and saves went through
    AtomicCheckpointIO().save_checkpoint(checkpoint(version + 1), path)  # the next save clears the leftovers
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"] and load(path) == version + 1


def test_a_failed_results_write_keeps_the_previous_files(tmp_path: Path, monkeypatch) -> None:
    rows = [
        {
            "set": "Set5",
            "scale": 2,
            "image": "baby",
            "psnr": 30.0,
            "ssim": 0.9,
            "bicubic_psnr": 28.0,
            "bicubic_ssim": 0.8,
        }
    ]
    paths = write_results(tmp_path, rows)
    before = {p: p.read_bytes() for p in paths.values()}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_results(tmp_path, [{**rows[0], "psnr": 31.0}])
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(tmp_path / "report.md", "new")
    assert {p: p.read_bytes() for p in paths.values()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())  # no temporaries
