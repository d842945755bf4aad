"""Every network's parameter count equals the BAM authors' code (shared/spec/expected_params.json).

Full-size networks are built (no forward pass here); the counts include frozen mean-shift convs,
as ``sum(p.numel() for p in model.parameters())`` does.
"""

from __future__ import annotations

import pytest

from lit_sisr.attention import AttentionFactory
from lit_sisr.backbones import build_backbone, count_parameters

from refdata import SPEC, expected_params, need

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


NETWORKS = ("edsr", "carn", "carn_m", "msrn", "slwsr32", "oisr_lf_s", "oisr_lf", "awsrn", "rcan", "imdn", "pan", "drln")
ABLATION = ("original", "acam", "acam_star", "msam", "msam_star", "bam", "bam_star", "cbam")


def test_every_cell_of_the_control_grid_and_the_ablation_is_checked() -> None:
    need(SPEC / "expected_params.json", "expected parameter counts")
    cells = {(r["model"], r["attention"], r["scale"]) for r in ROWS}
    grid = {(m, a, s) for m in NETWORKS for a in ("original", "bam") for s in (2, 3, 4)}
    ablation = {("imdn", a, s) for a in ABLATION for s in (2, 3, 4)}
    assert grid | ablation <= cells
