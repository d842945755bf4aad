"""Preemption and timeout under submitit: SIGUSR2 (submitit's signal) during training saves a
checkpoint and requeues the job, which resumes in the same folder and the same W&B run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from helpers import RESUME, probe, read_offline_run, start_train, steps, wait_for


def test_usr2_under_submitit_checkpoints_requeues_and_resumes_the_same_folder_and_wandb_run(
    tmp_path: Path, cache: Path
) -> None:
    from lit_sisr import run_id

    record = tmp_path / "probe.txt"
    env = {
        "LIT_SISR_CACHE": str(cache),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        **{
            var: str(tmp_path / "wandb_home")
            for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")
        },
    }
    args = ["-m", "hydra/launcher=local", *RESUME, "logger=wandb", "test=true", probe(record, pause_at=3)]
    proc, log = start_train(args, tmp_path, env)
    wait_for(record.with_suffix(".paused"), proc, log)
    task = int(record.with_suffix(".paused").read_text())
    assert task != proc.pid  # the submitit task, not the launching command
    os.kill(task, signal.SIGUSR2)  # what submitit_local / SLURM send before the time limit
    record.with_suffix(".go").touch()
    assert proc.wait(timeout=300) == 0, log.read_text()[-4000:]

    out = tmp_path / "logs" / "train" / "multirun" / "imdn-none-x2-seed123-demo"
    # stdout and stderr of the job (Lightning's own messages go to stderr)
    job_log = "\n".join(
        p.read_text() for p in sorted((tmp_path / "logs" / "train" / "multirun" / ".submitit").rglob("*_log.*"))
    )
    assert "Caught signal SIGUSR2" in job_log and "Requeued job" in job_log, job_log[-4000:]
    assert "checkpoint saved at step 4 (epoch 0)" in job_log
    assert "Restored all states from the checkpoint" in job_log
    # every step trained exactly once: steps 0-3 before the signal, then 4-11 after the requeue
    assert [s for s, _ in steps(record)] == list(range(12))
    done = json.loads((out / "done.json").read_text())
    assert done["metrics"]["test/demo_test/psnr"] > 0 and (out / "test_results.csv").is_file()

    # one W&B run continued across the requeue: two offline segments with the same id
    wid = run_id("train", "imdn-none-x2-seed123-demo")
    segments = sorted((out / "wandb").glob(f"offline-run-*-{wid}"))
    assert len(segments) == 2, sorted(p.name for p in (out / "wandb").iterdir())
    first, second = (read_offline_run(p) for p in segments)
    assert first["run"].run_id == second["run"].run_id == wid
    assert first["preempting"] and not second["preempting"] and second["exit_code"] == 0
    assert second["summary"]["test/demo_test/psnr"] == done["metrics"]["test/demo_test/psnr"]
    assert second["summary"]["trainer/global_step"] == 12
