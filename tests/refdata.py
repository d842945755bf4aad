"""Where the reference data lives, and skips when it is absent.

The data root is ``LIT_SISR_DATA`` (set by .ci/run to ../shared/data), else ``./data`` when it
exists (where ``python -m lit_sisr.data.download`` writes by default), else ``../shared/data``.
The reference specs and official weights sit beside it (``<data>/../spec``, ``<data>/../weights``),
as in ../shared.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    if os.environ.get("LIT_SISR_DATA"):
        return Path(os.environ["LIT_SISR_DATA"])
    local = Path.cwd() / "data"
    return local if local.is_dir() else REPO.parent / "shared" / "data"


DATA = _data_root().resolve()
SHARED = DATA.parent
BENCHMARK = DATA / "benchmark"
SPEC = SHARED / "spec"
WEIGHTS = SHARED / "weights"


def need(path: Path, what: str) -> Path:
    """Skip the calling test with a clear reason when reference data is absent."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set LIT_SISR_DATA to the shared data folder)")
    return path


def expected_params() -> list[dict]:
    path = SPEC / "expected_params.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["rows"]
