"""A decoded-image cache on disk, memory-mapped so that DataLoader workers share its pages.

Why: a Python list of decoded tensors is shared copy-on-write with forked workers, but each
worker then faults in (and, with spawn, pickles) its own copy, and every run decodes every PNG
again (DIV2K: minutes). Here each source image is decoded once, written as uint8 ``.npy`` files,
and opened with ``np.load(mmap_mode="c")``: every process reads the same page-cache pages, and a
later run reuses the files.

Layout under ``<root>``: one entry per (source files, variant), named by a hash of the source
paths and the variant (e.g. ``"pair x4 bicubic"``). An entry is ``<key>.json`` (the manifest:
sources with size and mtime, array shapes and checksums) and ``<key>-<i>.npy`` (the arrays). The
manifest is written last, atomically, so a half-built entry is never used.

Verification: on reuse the sources' size and mtime must equal the manifest's, every array file
must have the recorded shape, and a sampled checksum (a few rows of each array) must match; the
full-pixel checksum stored at build time is checked with ``verify="full"``. Any mismatch rebuilds
the entry from its sources.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

FORMAT = 2  # 2: HR stored once for every scale, LR per scale


def _stat(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def full_checksum(arr: np.ndarray) -> int:
    """CRC-32 of every pixel (build time, and ``verify="full"``)."""
    return zlib.crc32(np.ascontiguousarray(arr).data)


def sample_checksum(arr: np.ndarray) -> int:
    """CRC-32 of at most 8 evenly spaced rows of the first axis after channels (cheap on reuse)."""
    rows = arr.shape[-2] if arr.ndim >= 2 else 1
    picks = sorted(set(np.linspace(0, rows - 1, num=min(8, rows)).astype(int).tolist()))
    sample = arr[..., picks, :] if arr.ndim >= 2 else arr
    return zlib.crc32(np.ascontiguousarray(sample).data)


class DecodedCache:
    """``get(sources, variant, make)``: the arrays that ``make()`` decodes from ``sources``,
    memory-mapped from ``root`` (built on first use, verified and reused afterwards).

    ``verify``: ``"sample"`` (default; sizes, mtimes, shapes and a sampled checksum) or ``"full"``
    (also every pixel against the build-time checksum). ``stats`` counts builds and reuses.
    """

    def __init__(self, root: str | Path, verify: str = "sample") -> None:
        if verify not in ("sample", "full"):
            raise ValueError(f"cache verify={verify!r}: expected 'sample' or 'full'")
        self.root = Path(root)
        self.verify = verify
        self.stats = {"built": 0, "reused": 0}

    def key(self, sources: Sequence[Path], variant: str) -> str:
        text = json.dumps([FORMAT, variant, [str(Path(p).resolve()) for p in sources]])
        return hashlib.sha1(text.encode()).hexdigest()[:24]

    def manifest_path(self, sources: Sequence[Path], variant: str) -> Path:
        return self.root / f"{self.key(sources, variant)}.json"

    def get(self, sources: Sequence[Path], variant: str, make: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
        sources = [Path(p).resolve() for p in sources]
        key = self.key(sources, variant)
        arrays = self._open(key, sources, variant)
        if arrays is not None:
            self.stats["reused"] += 1
            return arrays
        self._build(key, sources, variant, make())
        self.stats["built"] += 1
        arrays = self._open(key, sources, variant)
        if arrays is None:  # e.g. another process replaced it between our write and our read
            raise RuntimeError(f"decoded cache entry {self.root / key}.json could not be read back after building")
        return arrays

    # -- internals ---------------------------------------------------------------------------------
    def _open(self, key: str, sources: list[Path], variant: str) -> list[np.ndarray] | None:
        manifest_file = self.root / f"{key}.json"
        try:
            manifest = json.loads(manifest_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if manifest.get("format") != FORMAT or manifest.get("variant") != variant:
            return None
        try:
            if manifest["sources"] != [_stat(p) for p in sources]:
                return None  # a source changed (or moved): rebuild
        except FileNotFoundError:
            return None
        arrays = []
        for entry in manifest["arrays"]:
            try:
                # "c" (copy-on-write) maps the file shared and read-only in practice, but gives a
                # writable array, so torch.from_numpy does not warn.
                arr = np.load(self.root / entry["file"], mmap_mode="c")
            except (FileNotFoundError, ValueError, OSError):
                return None
            if list(arr.shape) != entry["shape"] or arr.dtype != np.uint8:
                return None
            if sample_checksum(arr) != entry["sample_crc"]:
                return None
            if self.verify == "full" and full_checksum(arr) != entry["crc"]:
                return None
            arrays.append(arr)
        return arrays

    def _build(self, key: str, sources: list[Path], variant: str, arrays: list[np.ndarray]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        entries = []
        tag = f"{os.getpid()}"
        for i, arr in enumerate(arrays):
            arr = np.ascontiguousarray(arr, dtype=np.uint8)
            name = f"{key}-{i}.npy"
            tmp = self.root / f"{name}.{tag}.tmp"
            with open(tmp, "wb") as f:
                np.save(f, arr)
            os.replace(tmp, self.root / name)
            entries.append({"file": name, "shape": list(arr.shape),
                            "crc": full_checksum(arr), "sample_crc": sample_checksum(arr)})
        manifest = {"format": FORMAT, "variant": variant, "sources": [_stat(p) for p in sources], "arrays": entries}
        tmp = self.root / f"{key}.json.{tag}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, self.root / f"{key}.json")
