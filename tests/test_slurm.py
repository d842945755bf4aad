"""The cluster path against a real SLURM (slurmctld + slurmd; `.ci/slurm.sh up` starts one, and
.ci/run does for CI): job arrays, skipping finished jobs before submission, time limits,
preemption and requeue, failed tasks, DDP inside one job. CPU, smoke size. docs/slurm.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lit_sisr.data.demo import SPLITS

from helpers import TINY, read_offline_run
from refdata import REPO


def _cluster_missing() -> str | None:
    if shutil.which("sbatch") is None:
        return "no SLURM here (sbatch not found; `.ci/slurm.sh up` starts a one-node cluster)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20, check=False).stdout
        nodes = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"SLURM not reachable ({exc})"
    if "is UP" not in ping:
        return f"the SLURM controller is not up (scontrol ping: {ping.strip() or 'no answer'})"
    if not {"idle", "mixed", "allocated"} & set(nodes.split()):
        return f"no usable SLURM node (sinfo: {nodes.split()})"
    return None


_MISSING = _cluster_missing()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))]

SWEEP = ["experiment=control_grid", "debug=smoke", "scale=2", "hydra/launcher=slurm"]
# RESUME of helpers.py (12 steps, EMA, a schedule, mid-epoch checkpoints), as a one-job SLURM sweep
EXACT = [
    *TINY,
    "trainer.accelerator=cpu",
    "~callbacks.progress_bar",
    "+trainer.enable_progress_bar=false",
    "data.patch_size=16",
    "attention=none",
    "callbacks=ema",
    "data.repeat=1",
    "data.batch_size=2",
    "trainer.max_epochs=2",
    "callbacks.step_checkpoint.every_n_train_steps=4",
    "scheduler.step_size=1",
    "trainer.deterministic=true",
    "test=false",
    "logger=none",
    "model=imdn",
]
RUN = "imdn-none-x2-seed123-demo"
ONE_JOB = ["-m", "hydra/launcher=slurm"]  # a sweep of one job: the demo experiment
STEPS = 12


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "tests"), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    wandb_dirs = {
        v: str(tmp_path / "wandb_home") for v in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")
    }
    return {
        **os.environ,
        "HYDRA_FULL_ERROR": "1",
        "WANDB_MODE": "disabled",
        "WANDB_SILENT": "true",
        "PYTHONPATH": path,
        **wandb_dirs,
        **extra,
    }


def train(*args: str, cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """train.py in the foreground: it submits the array and waits for it (SLURM runs the jobs)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    (cwd / "launch.log").write_text(done.stdout + done.stderr)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def start(*args: str, cwd: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    log = cwd / "launch.log"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return proc, log


def array_id(output: str) -> str:
    found = re.search(r"Submitted (?:job array|job) (\d+)", output)  # the array's (or the one job's) id
    assert found, output[-3000:]
    return found.group(1)


def jobs(job: str, settled: bool = True) -> list[dict[str, str]]:
    """``scontrol show job`` records (every array task; kept MinJobAge s after the end). ``settled``:
    once no task is pending, running or completing (the launcher returns when the results are
    written, a moment before the processes have exited)."""
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, check=True).stdout
        records = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines() if line.strip()]
        busy = [r for r in records if r["JobState"] in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")]
        if not settled or not busy or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def all_job_ids() -> set[str]:
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"^JobId=(\d+)", out, re.MULTILINE))


def wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} never appeared (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def job_logs(sweep: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((sweep / ".submitit").rglob("*_log.*")))


def final_weights(run: Path) -> tuple[int, dict[str, torch.Tensor]]:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["global_step"], ckpt["state_dict"]


def steps(record: Path) -> list[int]:
    return [int(line) for line in record.read_text().split()]


def probe(record: Path, pause_at: tuple[int, ...] = (), sleep_s: float = 0.0, sleep_from: int = 0) -> str:
    return (
        f"+callbacks.probe={{_target_:fault_injection.StepProbe,record:'{record}',pause_at:{list(pause_at)},"
        f"sleep_s:{sleep_s},sleep_from:{sleep_from}}}"
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The uninterrupted run's final weights (a plain run, no SLURM)."""
    cwd = tmp_path_factory.mktemp("reference")
    env = _env(cwd, LIT_SISR_CACHE=str(tmp_path_factory.getbasetemp() / "cache"))
    train(*EXACT, cwd=cwd, env=env)
    step, weights = final_weights(cwd / "logs" / "train" / "runs" / RUN)
    assert step == STEPS
    return weights


def _ensure_demo(cache: Path) -> None:
    from lit_sisr.data.demo import ensure_demo_images

    ensure_demo_images(cache / "demo")  # once, before several array tasks would write it at once


def test_control_grid_is_one_job_array_and_a_relaunch_submits_nothing(tmp_path: Path, cache: Path) -> None:
    _ensure_demo(cache)
    env = _env(tmp_path)
    args = [*SWEEP, "model=imdn,pan", *TINY]  # default launcher settings
    first = train(*args, cwd=tmp_path, env=env)
    output = first.stdout + first.stderr
    array = array_id(output)
    tasks = jobs(array)
    assert sorted(int(t["ArrayTaskId"]) for t in tasks) == [0, 1, 2, 3]
    assert {t["ArrayJobId"] for t in tasks} == {array}  # ONE array of 4 tasks
    assert {(t["JobState"], t["ExitCode"]) for t in tasks} == {("COMPLETED", "0:0")}
    assert {t["NumCPUs"] for t in tasks} == {"1"} and not any(t.get("TresPerNode") for t in tasks)  # no GPU gres
    # no sacct noise from the status polls (accounting is off on this cluster)
    assert "sacct" not in output and "accounting storage is disabled" not in output, output[-3000:]
    sweep = tmp_path / "logs" / "control_grid" / "multirun"
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert names == [f"{m}-{a}-x2-seed123-demo" for m in ("imdn", "pan") for a in ("bam", "original")]
    for name in names:
        done = json.loads((sweep / name / "done.json").read_text())
        assert done["run_name"] == name and done["metrics"]["test/demo_test/psnr"] > 0
        assert (sweep / name / "test_results.csv").is_file()
    for task in range(4):  # SLURM's logs, one folder per array task
        assert (sweep / ".submitit" / f"{array}_{task}" / f"{array}_{task}_0_log.out").is_file()

    # the re-launch submits nothing and says so
    before = all_job_ids()
    again = train(*args, cwd=tmp_path, env=env)
    assert "All 4 jobs of this sweep have finished" in again.stdout + again.stderr
    assert "Submitted" not in again.stdout + again.stderr
    assert all_job_ids() == before

    # one run folder lost its done.json (killed before the end): only that job is submitted
    (sweep / "pan-bam-x2-seed123-demo" / "done.json").unlink()
    third = train(*args, cwd=tmp_path, env=env)
    output = third.stdout + third.stderr
    assert "1 of 4 jobs to run" in output and output.count("already finished") == 3
    (task,) = jobs(array_id(output))  # one job (submitit submits a single job without --array)
    assert (task["JobState"], task["ExitCode"]) == ("COMPLETED", "0:0")
    assert (sweep / "pan-bam-x2-seed123-demo" / "done.json").is_file()


def test_time_limit_requeues_into_the_same_folder_and_wandb_run_and_finishes_exactly(
    tmp_path: Path, cache: Path, reference: dict
) -> None:
    from lit_sisr import run_id

    # --time=1 --signal=USR2@5: SLURM warns 25-55 s after the start (its time-limit check runs every
    # 30 s) and kills at about 77 s. 12 steps of 4 s: the first segment cannot finish; a slow start
    # (a loaded machine) costs more segments, up to max_num_timeout.
    record = tmp_path / "steps.txt"
    env = _env(tmp_path, WANDB_MODE="offline")
    done = train(
        *ONE_JOB,
        *[a for a in EXACT if a != "logger=none"],
        "logger=wandb",
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=5",
        "hydra.launcher.max_num_timeout=5",
        probe(record, sleep_s=4.0),
        cwd=tmp_path,
        env=env,
    )
    (task,) = jobs(array_id(done.stdout + done.stderr))
    assert task["JobState"] == "COMPLETED" and int(task["Restarts"]) >= 1, task
    sweep = tmp_path / "logs" / "train" / "multirun"
    log = job_logs(sweep)
    assert "Caught signal SIGUSR2" in log and "timed-out" in log and "Requeued job" in log, log[-4000:]
    assert re.search(r"checkpoint saved at step [1-9]\d* \(epoch", log), log[-4000:]
    assert "Restored all states from the checkpoint" in log
    assert steps(record) == list(range(STEPS))  # every step trained exactly once
    step, weights = final_weights(sweep / RUN)
    assert step == STEPS and weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)

    # one W&B run across the requeue(s): offline segments with the same id, the last one finished
    wid = run_id("train", RUN)
    segments = sorted((sweep / RUN / "wandb").glob(f"offline-run-*-{wid}"))
    assert len(segments) == int(task["Restarts"]) + 1, segments
    runs = [read_offline_run(p) for p in segments]
    assert {r["run"].run_id for r in runs} == {wid}
    # (SLURM signals W&B's service process with the job: an earlier segment may end unfinished)
    assert runs[-1]["exit_code"] == 0 and not runs[-1]["preempting"]


def test_preemption_usr2_resumes_exactly_and_scontrol_requeue_restarts_from_the_sigterm_checkpoint(
    tmp_path: Path, cache: Path, reference: dict
) -> None:
    record = tmp_path / "steps.txt"
    env = _env(tmp_path)
    # pause before step 3 (USR2, submitit's preemption signal) and before step 8 (a bare scontrol
    # requeue); from step 10 on steps take 3 s, so that SLURM's SIGKILL (KillWait 5 s) comes mid-training
    proc, log = start(*ONE_JOB, *EXACT, probe(record, (3, 8), sleep_s=3.0, sleep_from=10), cwd=tmp_path, env=env)
    wait_for(Path(f"{record}.paused3"), proc, log)
    job = array_id(log.read_text())
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    Path(f"{record}.go3").touch()
    wait_for(Path(f"{record}.paused8"), proc, log)
    assert jobs(job, settled=False)[0]["Restarts"] == "1"
    subprocess.run(["scontrol", "requeue", job], check=True)
    time.sleep(1)  # the SIGTERM is recorded while the step waits
    Path(f"{record}.go8").touch()
    assert proc.wait(timeout=400) == 0, log.read_text()[-4000:]

    (task,) = jobs(job)
    assert task["JobState"] == "COMPLETED" and task["Restarts"] == "2", task
    sweep = tmp_path / "logs" / "train" / "multirun"
    text = job_logs(sweep)
    # USR2: checkpoint at the batch end, requeued by submitit, resumed with the next batch
    assert "Caught signal SIGUSR2" in text and "checkpoint saved at step 4 (epoch 0)" in text, text[-4000:]
    # scontrol requeue: SLURM's SIGTERM (submitit ignores it) only saves last.ckpt; the job goes on until
    # SLURM kills it and restarts it, from that checkpoint: the steps after it are trained twice
    assert "SIGTERM under submitit: checkpoint saved at step 9 (epoch 1)" in text, text[-4000:]
    ran = steps(record)
    assert ran[:10] == list(range(10)) and ran.count(9) == 2 and sorted(set(ran)) == list(range(STEPS)), ran
    step, weights = final_weights(sweep / RUN)
    assert step == STEPS and all(torch.equal(weights[k], reference[k]) for k in reference)


def test_a_failing_task_fails_in_slurm_and_wandb_and_the_launch_names_it(tmp_path: Path, cache: Path) -> None:
    from lit_sisr import run_id

    _ensure_demo(cache)
    env = _env(tmp_path, WANDB_MODE="offline")
    fail = "+callbacks.fail={_target_:fault_injection.FailAtStep,model:pan,step:1}"
    done = train(
        *SWEEP, "model=imdn,pan", "attention=none", *TINY, "logger=wandb", fail, cwd=tmp_path, env=env, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    array = array_id(output)
    states = {t["ArrayTaskId"]: (t["JobState"], t["ExitCode"]) for t in jobs(array)}
    assert states == {"0": ("COMPLETED", "0:0"), "1": ("FAILED", "1:0")}, states
    sweep = tmp_path / "logs" / "control_grid" / "multirun"
    assert (sweep / "imdn-none-x2-seed123-demo" / "done.json").is_file()
    assert not (sweep / "pan-none-x2-seed123-demo" / "done.json").exists()
    # the summary at the end names the failed job, its error and its log files
    summary = output[output.index("1 of 2 jobs of the sweep failed") :]
    out_log = sweep / ".submitit" / f"{array}_1" / f"{array}_1_0_log.out"
    assert f"job {array}_1 failed: RuntimeError: injected failure at step 1 (pan)" in summary, summary
    assert (
        str(out_log) in summary and out_log.is_file() and "injected failure" in out_log.with_suffix(".err").read_text()
    )
    (failed,) = (sweep / "pan-none-x2-seed123-demo" / "wandb").glob(
        f"offline-run-*-{run_id('control_grid', 'pan-none-x2-seed123-demo')}"
    )
    assert read_offline_run(failed)["exit_code"] == 1


def test_ddp_inside_one_slurm_job_uses_slurm_tasks_and_scores_each_test_image_once(tmp_path: Path, cache: Path) -> None:
    import csv

    env = _env(tmp_path)
    done = train(
        *SWEEP,
        "model=imdn",
        "attention=none",
        *TINY,
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        cwd=tmp_path,
        env=env,
    )
    (task,) = jobs(array_id(done.stdout + done.stderr))
    assert (task["NumTasks"], task["JobState"]) == ("2", "COMPLETED"), task
    sweep = tmp_path / "logs" / "control_grid" / "multirun"
    out = sweep / "imdn-none-x2-seed123-demo"
    log = (out / "train.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    text = job_logs(sweep)
    assert "global_rank=0(2)" in text and "global_rank=1(2)" in text  # two SLURM tasks, no spawned children
    assert "train_ddp_process" not in log + text
    rows = list(csv.DictReader((out / "test_results.csv").open()))
    assert sorted(r["image"] for r in rows) == sorted(SPLITS["test"])  # each test image once
    assert json.loads((out / "done.json").read_text())["metrics"]["test/demo_test/psnr"] > 0
