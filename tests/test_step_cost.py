"""What a training step reads back on the host, with the default callbacks, CSV logger and progress
bar: nothing, except on the steps where the logger writes or the progress bar redraws.

On a GPU every read of a device value (``.item()``, ``bool()``, ``.tolist()``, ...) is a host-device
sync; the device check (benchmarks/device_check.sh) verifies the same with
``torch.cuda.set_sync_debug_mode("error")``. Here, on the CPU, the reads are counted with a
``TorchFunctionMode``. Two kinds are host values on every device and are not counted: the
optimizer's step counters (CPU tensors unless ``capturable``) and the finite-loss flag, which on a
GPU is a pinned host copy read one step late (``callbacks.FiniteLossGuard``, ``lag_steps=1``)."""

from __future__ import annotations

import collections
import contextlib
import io
import traceback
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader

from helpers import TINY, compose_train

READS = {"item", "__bool__", "tolist", "__float__", "__int__", "__index__", "numpy", "__format__"}


def host_value(where: list[str]) -> bool:
    """A read of a value that is on the host on every device (see the module docstring)."""
    return any("torch/optim/" in w or w.endswith("lit_sisr/callbacks.py:read") for w in where)


class HostReads(TorchFunctionMode):
    """Counts tensor-to-host reads per training step (``step`` set by :class:`Mark`)."""

    def __init__(self) -> None:
        super().__init__()
        self.step: int | None = None
        self.reads: dict[int, list[str]] = collections.defaultdict(list)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.step is not None and getattr(func, "__name__", "") in READS:
            frames = traceback.extract_stack()[:-1]
            where = [f"{f.filename}:{f.name}" for f in frames]
            if not host_value(where):
                self.reads[self.step].append(" < ".join(w.rsplit("/", 1)[-1] for w in where[-4:]))
        return func(*args, **(kwargs or {}))


class Mark(pl.Callback):
    def __init__(self, mode: HostReads) -> None:
        self.mode = mode

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.mode.step = trainer.global_step + 1  # from here to the next step's start

    def on_train_end(self, trainer, pl_module) -> None:
        self.mode.step = None


def test_steps_read_nothing_back_except_when_logging_or_redrawing(tmp_path: Path) -> None:
    from lit_sisr.training import build

    cfg = compose_train(
        tmp_path,
        TINY
        + [
            "trainer.accelerator=cpu",
            "+trainer.max_steps=20",
            "trainer.max_epochs=-1",
            "+trainer.limit_val_batches=0",
            "test=false",
            "trainer.log_every_n_steps=10",
            "callbacks.progress_bar.refresh_rate=4",
            "callbacks.finite_loss.lag_steps=1",  # the GPU default
        ],
    )
    _, model, trainer = build(cfg)
    mode = HostReads()
    trainer.callbacks.append(Mark(mode))
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    with mode, contextlib.redirect_stderr(io.StringIO()):
        trainer.fit(model, train_dataloaders=DataLoader([(lr, hr)] * 20, batch_size=None))
    assert trainer.global_step == 20
    prints = {s for s in range(1, 21) if s % 10 == 0 or s % 4 == 0}
    quiet = {s: r for s, r in mode.reads.items() if s not in prints}
    assert not quiet, quiet  # e.g. a prog_bar=True value, converted by Lightning after every step
    assert {4, 8, 10, 12, 16, 20} <= set(mode.reads)  # the bar's and the logger's own reads are seen
