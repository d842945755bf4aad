"""Test-only callbacks that break a run on purpose (importable by subprocesses: tests/ on PYTHONPATH)."""
from __future__ import annotations

import pytorch_lightning as pl


class NaNBatchOnRank(pl.Callback):
    """Fill the LR batch with NaN on one rank at one step (``global_step`` before the update)."""

    def __init__(self, rank: int, step: int) -> None:
        self.rank, self.step = rank, step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            batch[0].fill_(float("nan"))
