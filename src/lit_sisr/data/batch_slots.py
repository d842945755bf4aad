"""Reusable shared-memory slots that DataLoader workers hand training batches back through.

Why: a worker's batch normally crosses to the main process as freshly allocated shared memory.
On Linux that is a new ``/dev/shm`` segment per tensor, whose pages are faulted in and zeroed on
first write, plus one file-descriptor hand-over per tensor (a socket connection with an
authentication round trip, served by a thread that waits for the worker's GIL). For 16 x4 patches
at 64 px (3.3 MB of uint8) that was 4-5 ms per batch in the worker and 2-3 ms in the main
process, three times the cost of cutting the patches (``benchmarks/data_path.py``).

Here the main process allocates ``count`` slots once, before the workers start (forked workers
inherit them; spawned ones receive them once with the dataset). A worker cuts its batch straight
into a free slot (:meth:`BatchSlots.reserve`; its pages were faulted in long ago) and sends only
(slot, shapes); the main process unpickles that as tensors over the slot's memory, without a
copy. The slot is freed
when the last of those tensors is garbage-collected (a ``_Lease`` array they hold), so a batch
the consumer still holds is never overwritten.

A slot is marked with the pid of the worker that filled it, then of the process that received
it. Slots whose worker died before they were received (an iterator shut down with batches still
in flight) are taken back when no slot is free; if every
slot is taken (e.g. the consumer keeps its batches), the batch falls back to torch's own
transport, which is slower but always correct. Persistent workers are drained by the DataLoader
itself at each epoch's reset, which unpickles whatever was in flight.
"""
from __future__ import annotations

import multiprocessing
import os
import uuid
import weakref
from functools import partial
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

# Slots of this process, by id: a SlotBatch unpickled in the main process finds its slots here.
_REGISTRY: "weakref.WeakValueDictionary[str, BatchSlots]" = weakref.WeakValueDictionary()
_ALIGN = 64  # bytes: every tensor in a slot starts aligned for any dtype view


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


def _nbytes(spec: tuple[tuple[int, ...], torch.dtype]) -> int:
    shape, dtype = spec
    return torch.Size(shape).numel() * dtype.itemsize


def _views(flat: torch.Tensor, specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> list[torch.Tensor]:
    """One tensor per (shape, dtype), consecutive and aligned views of the flat uint8 ``flat``."""
    out, offset = [], 0
    for spec in specs:
        out.append(flat[offset : offset + _nbytes(spec)].view(spec[1]).view(spec[0]))
        offset += _aligned(_nbytes(spec))
    return out


class BatchSlots:
    """``count`` shared buffers of ``nbytes`` each; create in the main process before the
    DataLoader starts its workers. ``context``: the DataLoader's ``multiprocessing_context``
    (None: the default start method), which the slots' lock must share."""

    def __init__(self, count: int, nbytes: int, context: str | None = None) -> None:
        if count < 1 or nbytes < 1:
            raise ValueError(f"BatchSlots needs count >= 1 and nbytes >= 1, got count={count}, nbytes={nbytes}")
        self.id = uuid.uuid4().hex
        self.buffer = torch.empty((count, _aligned(nbytes)), dtype=torch.uint8).share_memory_()
        self.owner = torch.zeros(count, dtype=torch.int64).share_memory_()  # pid of the filling worker; 0: free
        # Re-entrant: a lease can be finalized by the garbage collector while this thread holds it.
        self.lock = multiprocessing.get_context(context).RLock()
        # Batches sent through a slot, and the slow way (no slot free, or too large): all processes.
        self.counts = torch.zeros(2, dtype=torch.int64).share_memory_()
        _REGISTRY[self.id] = self

    def _acquire(self) -> int | None:
        pid = os.getpid()
        with self.lock:
            free = (self.owner == 0).nonzero()
            if len(free) == 0:
                self._reclaim_dead()
                free = (self.owner == 0).nonzero()
            if len(free) == 0:
                self.counts[1] += 1
                return None
            slot = int(free[0])
            self.owner[slot] = pid
            self.counts[0] += 1
            return slot

    def _reclaim_dead(self) -> None:
        """Free slots whose worker has exited (its batches were never unpickled). Lock held."""
        for slot, pid in enumerate(self.owner.tolist()):
            if pid and not _alive(pid):
                self.owner[slot] = 0

    def reserve(self, specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> "tuple[list[torch.Tensor], SlotBatch] | None":
        """In a worker: a free slot as tensors of the given (shape, dtype) to fill in place, and
        the message to send (instead of the tensors) once they are filled; None if no slot is
        free or they do not fit (then send tensors of your own: torch's transport)."""
        specs = [(tuple(shape), dtype) for shape, dtype in specs]
        if sum(_aligned(_nbytes(spec)) for spec in specs) > self.buffer.shape[1]:
            with self.lock:
                self.counts[1] += 1
            return None
        slot = self._acquire()
        if slot is None:
            return None
        return _views(self.buffer[slot], specs), SlotBatch(self.id, slot, specs)

    def unpack(self, slot: int, specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> list[torch.Tensor]:
        """In the main process: the batch in ``slot`` as tensors over the slot's memory (no copy).
        The slot is freed when the last of them (or of their views) is garbage-collected."""
        pid = os.getpid()
        with self.lock:  # the slot is the receiver's now: never reclaimed as a dead worker's
            self.owner[slot] = pid
        lease = self.buffer[slot].numpy().view(_Lease)
        lease.release, lease.pid = partial(self._release, slot), pid
        return _views(torch.from_numpy(lease), specs)  # they hold the lease: the slot stays taken

    def _release(self, slot: int) -> None:
        with self.lock:  # orders the consumer's reads before the slot is seen free
            self.owner[slot] = 0

    def in_flight(self) -> int:
        return int((self.owner != 0).sum())

    def stats(self) -> dict[str, int]:
        """Batches sent through a slot and the slow way so far, over all workers."""
        sent, fallback = self.counts.tolist()
        return {"slot": sent, "fallback": fallback}


class _Lease(np.ndarray):
    """A slot's bytes as a numpy array that frees the slot when it is deallocated. The tensors
    handed to the consumer keep it alive (``torch.from_numpy`` holds a reference to it)."""

    release, pid = None, None

    def __del__(self) -> None:
        # Only the process that received the batch frees it: a process forked from it inherits
        # the lease and may finalize it at exit while the parent still reads the slot.
        if self.release is not None and self.pid == os.getpid():
            self.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class SlotBatch:
    """What a worker sends for a batch in a slot: pickled as (slots id, slot, shapes), unpickled in
    the main process as the list of tensors itself (:meth:`BatchSlots.unpack`)."""

    def __init__(self, slots_id: str, slot: int, specs: list[tuple[tuple[int, ...], torch.dtype]]) -> None:
        self.slots_id, self.slot, self.specs = slots_id, slot, specs

    def __reduce__(self):
        return _receive, (self.slots_id, self.slot, self.specs)


def _receive(slots_id: str, slot: int, specs) -> list[torch.Tensor]:
    slots = _REGISTRY.get(slots_id)
    if slots is None:
        raise RuntimeError(
            f"a DataLoader batch arrived for batch slots {slots_id}, which this process does not hold: "
            "BatchSlots must be created in the process that iterates the DataLoader"
        )
    return slots.unpack(slot, specs)
