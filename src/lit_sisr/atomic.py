"""Atomic file writes: a crash or kill during a save leaves the previous file intact.

Every file is written to a hidden temporary sibling (``.<name>.<random>.tmp``), flushed and
fsynced, then renamed over the target with ``os.replace`` (atomic on POSIX within one file
system). A reader sees either the old file or the new one, never a partial file. Temporary files
never end in ``.ckpt``/``.csv``/``.json``, so no loader picks one up (Lightning's
``ckpt_path="last"`` looks for ``last*.ckpt`` only); one left by a killed writer is removed by the
next write of the same target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporaries of ``path`` left by an earlier, killed writer (one writer per target:
    checkpoints and results are written by global rank 0 only)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """``with atomic_file(p) as f: f.write(...)``: ``p`` changes only if the block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
