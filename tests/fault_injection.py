"""Test-only callbacks that break or watch a run on purpose (importable by subprocesses: tests/ on PYTHONPATH)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class NaNBatchOnRank(pl.Callback):
    """Fill the LR batch with NaN on one rank at one step (``global_step`` before the update)."""

    def __init__(self, rank: int, step: int) -> None:
        self.rank, self.step = rank, step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            batch[0].fill_(float("nan"))


class FailAtStep(pl.Callback):
    """Raise at one training step, for one network only (``model``: its ``model.name``), so that one
    task of a sweep fails after its run (and W&B run) started."""

    def __init__(self, model: str, step: int = 0) -> None:
        self.model, self.step = model, step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if pl_module.hparams.config["model"]["name"] == self.model and trainer.global_step == self.step:
            raise RuntimeError(f"injected failure at step {self.step} ({self.model})")


class StepProbe(pl.Callback):
    """Appends ``<global step>`` to ``record`` before each training step (flushed: a killed process
    keeps its lines). Before each step in ``pause_at`` (once: a requeued run does not pause again) it
    writes ``<record>.paused<step>`` (its pid) and waits for ``<record>.go<step>``, so that a test
    signals the job at a known step. From step ``sleep_from`` on each step first sleeps ``sleep_s``
    (a job longer than its time limit; the weights do not change)."""

    def __init__(
        self, record: str, pause_at: list[int] | None = None, sleep_s: float = 0.0, sleep_from: int = 0
    ) -> None:
        self.record, self.pause_at = Path(record), list(pause_at or [])
        self.sleep_s, self.sleep_from = sleep_s, sleep_from

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        step = trainer.global_step
        paused, go = Path(f"{self.record}.paused{step}"), Path(f"{self.record}.go{step}")
        if step in self.pause_at and not paused.exists():
            paused.write_text(str(os.getpid()))
            deadline = time.monotonic() + 300
            while not go.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nobody released {paused}")
                time.sleep(0.05)
        if step >= self.sleep_from and self.sleep_s:
            time.sleep(self.sleep_s)
        with self.record.open("a") as f:
            f.write(f"{step}\n")


class BatchProbe(pl.Callback):
    """Test instrument, enabled with ``+callbacks.probe={_target_:fault_injection.BatchProbe,record:...}``
    (:func:`helpers.probe`).

    Appends ``<global step> <batch checksum>`` to ``record`` before each training step (flushed,
    so a killed process keeps its lines). With ``pause_at``, before that step it writes
    ``<record>.paused`` (its pid) and waits for ``<record>.go``: the test signals this process at a
    known step, then lets it go on (once: a resumed or requeued run does not pause again)."""

    def __init__(self, record: str, pause_at: int | None = None) -> None:
        self.record, self.pause_at = Path(record), pause_at

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        paused, go = self.record.with_suffix(".paused"), self.record.with_suffix(".go")
        if trainer.global_step == self.pause_at and not paused.exists():
            paused.write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while not go.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nobody released {paused}")
                time.sleep(0.02)
        digest = hashlib.sha1(b"".join(t.numpy().tobytes() for t in batch)).hexdigest()[:16]
        with self.record.open("a") as f:
            f.write(f"{trainer.global_step} {digest}\n")
