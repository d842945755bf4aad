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
from torch import nn

from lit_sisr.backbones import BACKBONES, build_backbone
from lit_sisr.weights import read_state

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


def authors_net(
    name: str, scale: int, path: Path, *, format: str = "official", attention: str = "original", **options
) -> nn.Module:
    """Network ``name`` built with the options of its declared authors' format
    (``authors_formats[format]``; ``options`` override them) and the authors' file ``path``
    loaded through that format's converter, strictly (torch's RuntimeError when it does not
    fit). DataParallel's ``module.`` prefix is dropped, as the authors' own loaders do."""
    fmt = BACKBONES.get(name).authors_formats[format]
    net = build_backbone(name, scale, attention, **{**fmt.options, **options})
    state = {k.removeprefix("module."): v for k, v in read_state(path).items()}
    net.load_state_dict(fmt.convert(state), strict=True)
    return net.eval()


def benchmark_set(name: str, scale: int):
    """The shared benchmark set ``name`` (EDSR layout) as an ImageSet at ``scale``."""
    from lit_sisr.data.testsets import named_sets

    (images,) = named_sets([name], str(BENCHMARK), scale)
    return images
