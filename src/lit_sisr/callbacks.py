"""Training-safety callbacks: stop on a non-finite loss, checkpoint and stop (or requeue) on a signal;
and a progress bar that reads the training loss only when it redraws.

All are enabled in ``conf/callbacks/default.yaml``; docs/reliability.md describes the safety
callbacks, docs/benchmarks.md (section 1) what runs per training step.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections import deque
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint, ModelCheckpoint, TQDMProgressBar

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (or was about to save non-finite weights)."""


class Preempted(SystemExit):
    """The job stops because of a signal, after saving its checkpoint (a resumable stop, not a bug):
    the message for a plain run, or submitit's exit code after it requeued the job."""


def _last_good_checkpoint(trainer: pl.Trainer, fallback: str | None) -> str | None:
    """The newest checkpoint file the run's checkpoint callbacks know of (else ``fallback``)."""
    paths = {fallback} if fallback else set()
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint):
            paths |= {cb.last_model_path, cb.best_model_path}
        elif isinstance(cb, SignalCheckpoint):
            paths.add(cb.path)
    existing = [p for p in paths if p and Path(p).is_file()]
    return max(existing, key=lambda p: Path(p).stat().st_mtime_ns) if existing else None


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, also showing ``show`` (logged training values, e.g. ``train/loss_step``) that
    are not logged with ``prog_bar=True``: Lightning converts prog_bar values to Python numbers
    after every step (a host-device sync per step on a GPU); this bar reads them from
    ``trainer.callback_metrics`` only when it redraws (every ``refresh_rate`` steps)."""

    def __init__(self, refresh_rate: int = 1, show: tuple[str, ...] = ("train/loss_step",), **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.show = tuple(show)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        logged = trainer.callback_metrics
        for key in self.show:
            value = logged.get(key)
            if value is not None:
                metrics[key] = f"{float(value):.4g}"  # the one host read, at redraw time
        return metrics


class _HostFlag:
    """A device bool on its way to the host: copied without waiting (pinned memory and an event on
    CUDA), read when asked. On CPU it is the value itself."""

    def __init__(self, flag: torch.Tensor) -> None:
        self.event = None
        if flag.is_cuda:
            self.value = torch.empty((), dtype=torch.bool, pin_memory=True)
            self.value.copy_(flag, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.value = flag

    def read(self) -> bool:
        if self.event is not None:
            self.event.synchronize()  # this flag's copy only, not the whole device queue
        return bool(self.value)


def _any_rank(trainer: pl.Trainer, flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (a no-op for a single process; under
    DDP a collective and a host read)."""
    if trainer.world_size == 1:
        return flag
    return bool(trainer.strategy.reduce_boolean_decision(flag, all=False))


def _any_rank_on_device(trainer: pl.Trainer, flag: torch.Tensor) -> torch.Tensor:
    """:func:`_any_rank` for a device tensor, without reading it on the host. Calls
    ``torch.distributed`` directly: Lightning's ``strategy.reduce`` runs a barrier first, which
    with NCCL blocks the host."""
    if trainer.world_size == 1:
        return flag
    flag = flag.to(torch.int32)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return flag > 0


class FiniteLossGuard(pl.Callback):
    """Stop training at the first NaN/infinite loss, with one line naming the step and the last
    good checkpoint; and refuse to write any checkpoint whose weights are not finite, so a bad
    state never replaces a good file.

    The loss is checked in ``on_before_backward`` (inside the optimizer closure, before
    ``backward`` and ``optimizer.step``); raising there ends ``fit`` through Lightning's exception
    path, which saves nothing by itself (no ``OnExceptionCheckpoint`` is configured).

    ``lag_steps``: how many steps later a step's check is read on the host. With 0 the check is
    read at once and training stops *before* the bad update reaches the weights; on a GPU that is
    a host-device sync every step (the CPU waits for the forward pass before it can queue the
    backward). With 1 the flag is copied to the host without waiting and read one step later,
    when the device has long finished it, so nothing stalls; the bad update has then reached the
    weights in memory, which are never saved (see above). ``None`` (the default): 0 on CPU, where
    reading costs nothing, 1 on an accelerator. Under DDP every rank reads the same all-reduced
    flag at the same step, so all ranks stop together.
    """

    def __init__(self, lag_steps: int | None = None) -> None:
        if lag_steps is not None and lag_steps < 0:
            raise ValueError(f"FiniteLossGuard lag_steps={lag_steps}: expected 0, 1, ... or None (auto)")
        self.lag_steps = lag_steps
        self._resumed_from: str | None = None
        self._last_saved_step: int | None = None
        # (step, epoch, batch, loss, flag) of checks not read yet
        self._pending: deque[tuple[int, int, int, torch.Tensor, _HostFlag]] = deque()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path:
            self._resumed_from, self._last_saved_step = str(trainer.ckpt_path), trainer.global_step
        self._pending.clear()

    def _lag(self, loss: torch.Tensor) -> int:
        if self.lag_steps is not None:
            return self.lag_steps
        return 0 if loss.device.type == "cpu" else 1

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        loss = loss.detach()
        bad = _any_rank_on_device(trainer, ~torch.isfinite(loss).all())
        step, epoch, batch = trainer.global_step + 1, trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_idx + 1
        self._pending.append((step, epoch, batch, loss, _HostFlag(bad)))
        self._read(trainer, self._lag(loss), seen_at=step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._read(trainer, 0, seen_at=None)  # the last steps' checks, still unread

    def _read(self, trainer: pl.Trainer, keep: int, seen_at: int | None) -> None:
        while len(self._pending) > keep:
            step, epoch, batch, loss, flag = self._pending.popleft()
            if flag.read():
                self._pending.clear()
                self._stop(trainer, step, epoch, batch, loss, seen_at)

    def _stop(
        self, trainer: pl.Trainer, step: int, epoch: int, batch: int, loss: torch.Tensor, seen_at: int | None
    ) -> None:
        value = loss.float().sum().item()
        value = value if not math.isfinite(value) else "non-finite on another rank"
        good = _last_good_checkpoint(trainer, self._resumed_from)
        where = f"{good} (step {self._last_saved_step})" if good else "none (no checkpoint saved yet)"
        if seen_at == step:
            what = "training stopped before this step's update, nothing saved"
        else:
            when = f"at step {seen_at}" if seen_at is not None else "when training ended"
            what = (
                f"seen {when} (lag_steps: the check is read late so as not to stall the device), so the "
                "weights in memory took that update; they are not saved"
            )
        raise NonFiniteLossError(
            f"training loss is {value} at step {step} (epoch {epoch}, batch {batch}): {what}. "
            f"Last good checkpoint: {where}. "
            "Lower the learning rate or check the data before resuming."
        )

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        for key in ("state_dict", "current_model_state"):  # current_model_state: EMAWeightAveraging's raw weights
            for name, value in (checkpoint.get(key) or {}).items():
                if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    raise NonFiniteLossError(
                        f"refusing to save a checkpoint at step {checkpoint.get('global_step')}: {key}.{name} has "
                        f"NaN/inf values (the previous checkpoint is kept: "
                        f"{_last_good_checkpoint(trainer, self._resumed_from)})"
                    )
        self._last_saved_step = int(checkpoint.get("global_step", trainer.global_step))


def _under_submitit() -> bool:
    return "SUBMITIT_EXECUTOR" in os.environ


def _submitit_signal() -> signal.Signals:
    """submitit's timeout/preemption signal (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class SignalCheckpoint(Checkpoint):
    """On SIGTERM or SIGUSR2 during training: finish the current batch, save ``path`` (normally
    ``checkpoints/last.ckpt``, the file a re-run resumes from), then stop.

    * Plain run: exit with status 1 and a one-line message saying to re-run the same command.
    * Under submitit (``hydra/launcher=local|slurm``): after saving, the timeout/preemption signal
      (USR2) is handed to submitit's own handler, which calls the Hydra launcher's ``checkpoint()``,
      requeues the same job (same folder, same W&B id) and exits; SIGTERM, which submitit ignores
      (SLURM sends it before killing or requeueing a job itself), only triggers the save.

    Why not Lightning's ``OnExceptionCheckpoint`` alone: submitit's handler raises ``SystemExit``
    wherever the main thread happens to be (e.g. halfway through ``optimizer.step``), so a
    checkpoint written from ``on_exception`` can hold a half-updated state. Here the handler only
    records the signal; the save happens at a batch boundary, the same place as the periodic
    checkpoints, so the resume is exact. Under DDP the ranks agree on the stop with one boolean
    all-reduce every ``ddp_check_every_n_steps`` steps (a host-device sync, so not every step; the
    stop comes at most that many batches later, well inside SLURM's signal warning). The handlers
    are installed for the training loop only (``on_train_start`` to ``on_train_end``); a signal during validation waits for the next batch end, one at the end
    of training stops without a new save (the last epoch's checkpoint is on disk), and outside
    training the previous handlers (submitit's, Lightning's) act as before. A subclass of
    ``Checkpoint`` so that Lightning runs it after the other callbacks (EMA updates first).
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt", ddp_check_every_n_steps: int = 10) -> None:
        if ddp_check_every_n_steps < 1:
            raise ValueError(f"SignalCheckpoint ddp_check_every_n_steps={ddp_check_every_n_steps}: expected >= 1")
        self.path = str(Path(dirpath) / filename)
        self.ddp_check_every_n_steps = ddp_check_every_n_steps
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def _signals(self) -> list[int]:
        return sorted({signal.SIGTERM, signal.SIGUSR2, _submitit_signal()})

    def _record(self, signum: int, frame: Any) -> None:
        if self._pending is None:
            self._pending = signum
            log.warning("received %s: saving a checkpoint after the current batch", signal.Signals(signum).name)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.received_sigterm:  # arrived while fit was starting, caught by Lightning's own handler
            trainer._signal_connector.received_sigterm = False
            self._pending = signal.SIGTERM
        for signum in self._signals:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._record)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # global_step is the same on every rank, so all ranks join the same collectives.
        if trainer.world_size > 1 and trainer.global_step % self.ddp_check_every_n_steps:
            return
        if _any_rank(trainer, self._pending is not None):
            trainer.save_checkpoint(self.path)
            self._stop(trainer, saved=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _any_rank(trainer, self._pending is not None):
            self._stop(trainer, saved=False)
        self._restore_handlers()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()

    def _stop(self, trainer: pl.Trainer, saved: bool) -> None:
        signum = self._pending if self._pending is not None else signal.SIGTERM  # another rank's signal
        self._pending = None
        name = signal.Signals(signum).name
        what = (
            f"checkpoint saved at step {trainer.global_step} (epoch {trainer.current_epoch}): {self.path}"
            if saved
            else f"training had ended; last checkpoint: {_last_good_checkpoint(trainer, None)}"
        )
        if _under_submitit():
            if signum == signal.SIGTERM:
                log.warning("%s under submitit: %s; continuing (submitit leaves SIGTERM to SLURM)", name, what)
                return
            log.warning("%s: %s; handing over to submitit (requeue)", name, what)
            handler = self._previous.get(signum)
            self._restore_handlers()
            if callable(handler):
                try:
                    handler(signum, None)  # submitit: launcher.checkpoint(), requeue, sys.exit (rank 0 only)
                except SystemExit as requeued:
                    raise Preempted(requeued.code) from requeued
            return
        message = f"stopped by {name}: {what}. Re-run the same command to resume from it."
        log.error(message)
        raise Preempted(message)


class RecordConfig(pl.Callback):
    """Write ``config.yaml`` (:func:`lit_sisr.outputs.write_config`) when the run really starts: after its data was
    set up and its checkpoint restored (``on_train_start``; ``on_test_start`` for a network that is
    only tested), so a launch that fails before leaves an earlier run's record as it was."""

    def __init__(self, folder: str | Path, config: dict) -> None:
        self.folder, self.config, self.written = Path(folder), config, False

    def _write(self, trainer: pl.Trainer) -> None:
        if trainer.is_global_zero and not self.written:
            from lit_sisr.outputs import write_config

            write_config(self.folder, self.config)
        self.written = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)
