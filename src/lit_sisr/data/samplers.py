"""Samplers that make training reproducible, resumable mid-epoch, and evaluation exact under DDP."""
from __future__ import annotations

from typing import Any, Callable, Iterator

from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

# (epoch, batches of that epoch already trained)
Position = Callable[[], "tuple[int, int]"]


def training_position(trainer: Any) -> tuple[int, int]:
    """Where the fit loop of ``trainer`` stands: (epoch to iterate, batches of it already trained).

    Read from Lightning's own progress counters, which every checkpoint carries and a resume
    restores, so the sampler needs no state of its own. Two Lightning 2.6.6 facts shape this:

    * The epoch is read here rather than taken from ``set_epoch``: after a resume with
      ``num_workers > 0`` the DataLoader iterates the sampler before Lightning calls ``set_epoch``
      (Lightning-AI/pytorch-lightning#21938; docs/ecosystem.md, item 3).
    * A mid-epoch resume restores the batch counter but restarts the DataLoader from the start of
      the epoch unless the loader is "stateful" (``fit_loop.setup_data``,
      ``training_epoch_loop.reset``): the sampler itself must skip the batches already trained.

    The sampler is iterated either before the loops reset their counters after a restore (workers
    prefetch when the iterator is created) or after (``num_workers=0`` iterates lazily). Both
    states give the same answer: a checkpoint written after the last batch of an epoch
    (``is_last_batch``, before the loops reset) means the next epoch (``started``), from its start;
    otherwise the epoch is ``processed`` (completed epochs) and ``ready`` batches of it are done.
    """
    loop = trainer.fit_loop
    epochs, batches = loop.epoch_progress.current, loop.epoch_loop.batch_progress
    if batches.is_last_batch:
        return int(epochs.started), 0
    return int(epochs.processed), int(batches.current.ready)


def mark_resumed_epoch_started(trainer: Any) -> None:
    """After a resume from a checkpoint saved at the end of an epoch's last batch (a signal or
    periodic checkpoint written in ``on_train_batch_end``), count the next epoch as started.

    Lightning 2.6.6 restores such a checkpoint as "that epoch is done" (``_FitLoop.reset`` raises
    ``epoch_progress`` ``processed``/``completed``) but, taking the restart for a mid-epoch one,
    skips the ``ready``/``started`` increments (and ``on_train_epoch_start``) of the epoch it then
    runs. Every checkpoint written during that epoch then reads as "no epoch in progress", and a
    resume from it restarts the epoch from batch 0: a run interrupted first there and then
    mid-epoch trained steps twice (docs/reliability.md). Call it in ``on_train_start`` (after the
    loops are reset, before the epoch starts); it changes nothing in any other case.
    """
    loop = trainer.fit_loop
    epochs = loop.epoch_progress
    if loop.restarted_mid_epoch and epochs.current.started == epochs.current.processed:
        epochs.increment_ready()
        epochs.increment_started()


class EpochSampler(DistributedSampler):
    """A shuffling ``DistributedSampler`` that yields ``(index, epoch)`` and resumes mid-epoch.

    The dataset seeds each item's crop and augmentation from (seed, epoch, index), so a sample
    does not depend on worker count or on the global RNG. Works for one process too
    (``num_replicas=1, rank=0``).

    ``position`` (e.g. ``functools.partial(training_position, trainer)``) is asked at each
    ``__iter__`` for (epoch, batches already trained in it); the first ``batches * batch_size``
    indices of this rank's shard are then skipped, so a resumed epoch continues with the exact
    next batch (the skipped batches are full ones: only an epoch's last batch can be short, and a
    finished epoch restarts at batch 0). ``len()`` stays the
    full epoch: Lightning counts the skipped batches itself. Without ``position`` the sampler
    uses ``set_epoch`` and starts each epoch at its beginning.
    """

    def __init__(self, dataset: Any, *args: Any, batch_size: int = 1, position: Position | None = None,
                 **kwargs: Any) -> None:
        super().__init__(dataset, *args, **kwargs)
        self.batch_size = batch_size
        self.position = position

    def current_position(self) -> tuple[int, int]:
        """(epoch, batches already trained in it): from ``position`` when given, else (the epoch
        set by ``set_epoch``, 0)."""
        return self.position() if self.position is not None else (self.epoch, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch, done = self.current_position()
        self.set_epoch(epoch)
        indices = list(super().__iter__())[done * self.batch_size:]
        return iter([(int(i), epoch) for i in indices])


class EpochBatchSampler(BatchSampler):
    """An :class:`EpochSampler`'s keys in lists of ``batch_size`` (the last one may be short), for a
    DataLoader with ``batch_size=None`` whose dataset cuts a whole batch per list."""

    def __init__(self, sampler: EpochSampler, batch_size: int) -> None:
        super().__init__(sampler, batch_size, drop_last=False)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def current_position(self) -> tuple[int, int]:
        return self.sampler.current_position()


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` (or :class:`EpochBatchSampler`) with a position:
    resumable mid-epoch.

    Lightning 2.6.6 calls a loader "resumable" when it has ``state_dict``/``load_state_dict``
    (it warns otherwise on a mid-epoch resume, ``training_epoch_loop.reset``). Here nothing needs
    restoring: the position lives in Lightning's progress counters, which checkpoints carry and
    the sampler reads (:func:`training_position`). ``state_dict`` records it for inspection only.
    """

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        epoch, done = sampler.current_position() if isinstance(sampler, (EpochSampler, EpochBatchSampler)) else (0, 0)
        return {"epoch": epoch, "batches_done": done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Nothing to load: the sampler reads the restored fit-loop progress itself."""
