"""Every network's parameter count equals the BAM authors' code (shared/spec/expected_params.json).

Full-size networks are built (no forward pass here); the counts include frozen mean-shift convs,
as ``sum(p.numel() for p in model.parameters())`` does.
"""
from __future__ import annotations

import pytest

from conftest import SPEC, expected_params, need
from lit_sisr.attention import AttentionFactory
from lit_sisr.backbones import build_backbone, count_parameters

ROWS = expected_params()


def _id(row: dict) -> str:
    extra = "".join(f"-{k}{v}" for k, v in row["overrides"].items())
    return f"{row['model']}-{row['attention']}-x{row['scale']}{extra}"


@pytest.mark.parametrize("row", ROWS, ids=[_id(r) for r in ROWS])
def test_parameter_count_matches_authors_code(row: dict) -> None:
    need(SPEC / "expected_params.json", "expected parameter counts")
    scale = row["scale"] or 2  # multi-scale models (CARN-M official) count the same at every scale
    net = build_backbone(row["model"], scale, AttentionFactory(row["attention"]), **row["overrides"])
    assert count_parameters(net) == row["params"]


def test_expected_params_file_is_present_when_data_is() -> None:
    need(SPEC.parent / "data", "shared data")
    assert len(ROWS) >= 100, "expected_params.json should list every network x attention x scale"
