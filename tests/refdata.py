"""Where the reference data lives, and skips when it is absent.

``LIT_SISR_DATA`` (set by .ci/run to ../shared/data) is the data root; the reference specs and
official weights sit beside it (``<data>/../spec``, ``<data>/../weights``), as in ../shared.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LIT_SISR_DATA", REPO.parent / "shared" / "data")).resolve()
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


def benchmark_set(name: str, scale: int):
    """The shared benchmark set ``name`` (EDSR layout) as an ImageSet at ``scale``."""
    from lit_sisr.data.testsets import named_sets

    (images,) = named_sets([name], str(BENCHMARK), scale)
    return images
