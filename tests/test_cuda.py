"""Checks that need a CUDA device (skipped without one; benchmarks/device_check.sh runs them on a
lent GPU): the finite-loss guard's lagged check (pinned host copy and event, read one step late)
and no host-device synchronisation in a training step with the default callbacks, CSV logger and
progress bar (``torch.cuda.set_sync_debug_mode``), except on the steps where the logger writes or
the progress bar redraws."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/device_check.sh)"
)


def test_lagged_finite_loss_check_reads_a_pinned_copy_one_step_late() -> None:
    from lit_sisr.callbacks import FiniteLossGuard, NonFiniteLossError, _HostFlag

    flag = _HostFlag(torch.tensor(True, device="cuda"))
    assert flag.value.is_pinned() and flag.event is not None and flag.read() is True
    guard = FiniteLossGuard()  # lag_steps=None: 1 on an accelerator
    trainer = SimpleNamespace(
        world_size=1,
        global_step=0,
        current_epoch=0,
        checkpoint_callbacks=[],
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_idx=0)),
    )
    losses = [torch.tensor(v, device="cuda") for v in (1.0, 2.0, float("nan"), 3.0)]
    torch.cuda.set_sync_debug_mode("error")  # queuing a check must not wait for the device
    try:
        for step in range(2):
            trainer.global_step = trainer.fit_loop.epoch_loop.batch_idx = step
            guard.on_before_backward(trainer, None, losses[step] * 1)
        assert len(guard._pending) == 1  # the step-2 check waits
        trainer.global_step = trainer.fit_loop.epoch_loop.batch_idx = 2
        guard.on_before_backward(trainer, None, losses[2] * 1)  # reads step 2's (finite) check
        trainer.global_step = trainer.fit_loop.epoch_loop.batch_idx = 3
        with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 3 \(epoch 0, batch 3\): seen at step 4"):
            torch.cuda.set_sync_debug_mode("default")  # the stop itself reads the loss for its message
            guard.on_before_backward(trainer, None, losses[3] * 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")


class SyncWatch(pl.Callback):
    """``set_sync_debug_mode("warn")`` from each step's start to the next one's, except across the
    steps where the logger writes or the progress bar redraws; collects the sync warnings."""

    def __init__(self, quiet: set[int]) -> None:
        self.quiet, self.syncs, self._catch = quiet, [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._stop()
        if trainer.global_step + 1 in self.quiet:
            self._catch = warnings.catch_warnings(record=True)
            self._log = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def _stop(self) -> None:
        torch.cuda.set_sync_debug_mode("default")
        if self._catch is not None:
            self.syncs += [str(w.message) for w in self._log if "synchroniz" in str(w.message)]
            self._catch.__exit__(None, None, None)
            self._catch = None

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop()


def test_default_training_steps_do_not_synchronise(tmp_path: Path) -> None:
    from lit_sisr.training import build

    from helpers import TINY, compose_train

    steps, log_every, refresh = 50, 50, 5
    cfg = compose_train(
        tmp_path,
        TINY
        + [
            "trainer=gpu",
            f"+trainer.max_steps={steps}",
            "trainer.max_epochs=-1",
            "+trainer.limit_val_batches=0",
            "test=false",
            f"trainer.log_every_n_steps={log_every}",
            f"callbacks.progress_bar.refresh_rate={refresh}",
        ],
    )
    _, model, trainer = build(cfg)
    # Step 1 warms up (allocations, cudnn autotuning); the logger writes at step 50, the bar redraws
    # every 5 steps: the other 39 steps are watched,
    # each from its start to the next one's (Lightning's own bookkeeping after the step included).
    quiet = {s for s in range(2, steps + 1) if s % refresh and s % log_every}
    watch = SyncWatch(quiet)
    trainer.callbacks.insert(0, watch)
    lr = torch.rand(16, 3, 32, 32, device="cuda")
    hr = torch.rand(16, 3, 64, 64, device="cuda")
    with contextlib.redirect_stderr(io.StringIO()):
        trainer.fit(model, train_dataloaders=DataLoader([(lr, hr)] * steps, batch_size=None))
    assert trainer.global_step == steps and len(quiet) >= 30
    assert not watch.syncs, watch.syncs[:5]
