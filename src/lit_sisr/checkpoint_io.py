"""Lightning checkpoint IO that saves atomically (see :mod:`lit_sisr.atomic`)."""

from __future__ import annotations

import os
from typing import Any

from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import TorchCheckpointIO

from lit_sisr.atomic import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, saving through a temporary file and ``os.replace``
    (streamed to the file: no second in-memory copy of a large checkpoint). A checkpoint already
    read and checked (:meth:`preload`, resume) is handed to Lightning instead of a second read."""

    def __init__(self) -> None:
        super().__init__()
        self._preloaded: dict[str, dict[str, Any]] = {}

    def preload(self, path: _PATH, checkpoint: dict[str, Any]) -> None:
        self._preloaded[os.path.abspath(path)] = checkpoint

    def load_checkpoint(self, path: _PATH, *args: Any, **kwargs: Any) -> dict[str, Any]:
        checkpoint = self._preloaded.pop(os.path.abspath(path), None)
        return checkpoint if checkpoint is not None else super().load_checkpoint(path, *args, **kwargs)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        import torch

        with atomic_file(path) as f:
            torch.save(checkpoint, f)
