"""The device check's CPU rehearsal (``bash benchmarks/device_check.sh --rehearse``) runs every part
(a-e and the CUDA tests, which skip here) at tiny sizes and writes its one results file, so the
command a lent GPU runs cannot rot. No figure is asserted (they mean nothing at these sizes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from refdata import REPO, need

DATA = Path(os.environ.get("LIT_SISR_DATA", REPO.parent / "shared" / "data"))


@pytest.mark.slow
def test_rehearsal_runs_every_part_and_writes_one_results_file(tmp_path: Path) -> None:
    need(DATA / "train" / "T91" / "HR", "T91")
    need(DATA / "benchmark" / "Set5" / "HR", "Set5")
    out = tmp_path / "results.md"
    env = {**os.environ, "WANDB_MODE": "disabled", "OUT": ""}
    done = subprocess.run(
        [
            "bash",
            str(REPO / "benchmarks" / "device_check.sh"),
            "--rehearse",
            "--data",
            str(DATA),
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    text = out.read_text()
    for title in (
        "## a. Training step",
        "## b. BAM's cost",
        "## c. Speed knobs",
        "## d. Data path",
        "## CUDA-only tests",
        "## e. First verdict",
    ):
        assert title in text, title
    assert text.count("- status: ok") == 6, text
    assert "| tiny | x2 |" in text and "| x4 | - | device |" in text and "| x4 | 0 | host |" in text
    assert "skipped" in text  # the CUDA tests, on a CPU
    assert "imdn" in text.split("## e. First verdict")[1].lower()  # report.py's tables and verdict
