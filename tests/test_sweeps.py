"""Experiments as sweeps, re-launching, W&B offline and DDP: the real CLI, shrunk."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lit_sisr.data.demo import SPLITS

from helpers import SHRINK, TINY, compose_train, read_offline_run
from refdata import REPO


def cli(*args: str, cwd: Path, script: str = "train.py") -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        (cwd / "cli_failure.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def test_control_grid_slice_runs_with_smoke_and_relaunch_skips_finished_jobs(tmp_path: Path, cache: Path) -> None:
    # one command, no -m: the experiment file makes it a multirun; the command line narrows the grid
    args = ["experiment=control_grid", "debug=smoke", "model=pan,imdn", "attention=original", "scale=2", *TINY]
    first = cli(*args, cwd=tmp_path)
    assert "Launching 2 jobs locally" in first.stdout
    sweep = tmp_path / "logs" / "control_grid" / "multirun"
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert names == ["imdn-original-x2-seed123-demo", "pan-original-x2-seed123-demo"]
    for name in names:
        assert (sweep / name / "test_results.csv").is_file() and (sweep / name / "done.json").is_file()
        saved = json.loads((sweep / name / "done.json").read_text())
        assert saved["metrics"]["test/demo_test/psnr"] > 0 and saved["run_name"] == name
    ckpts = {p: p.stat().st_mtime_ns for p in sweep.glob("*/checkpoints/*.ckpt")}
    assert len(ckpts) == 4  # best + last per job

    # re-launch: a job without done.json (killed before the end) resumes, finished ones are skipped
    (sweep / "pan-original-x2-seed123-demo" / "done.json").unlink()
    again = cli(*args, cwd=tmp_path)
    assert again.stdout.count("already finished") == 1 and "imdn-original-x2-seed123-demo: already" in again.stdout
    assert "Restored all states from the checkpoint" in again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in ckpts} == ckpts  # nothing retrained
    assert (sweep / "pan-original-x2-seed123-demo" / "done.json").is_file()


def test_wandb_offline_run_logs_and_is_finished(tmp_path: Path, cache: Path, monkeypatch) -> None:
    import wandb

    from lit_sisr import run_id
    from lit_sisr.module import LitSR
    from lit_sisr.training import train

    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the config's default
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_train(tmp_path, SHRINK + ["logger=wandb", "trainer.max_epochs=1", "trainer.log_every_n_steps=1"])
    wid = cfg.logger.wandb.id
    assert wid == run_id("train", "imdn-bam-x2-seed123-demo") and cfg.logger.wandb.mode == "offline"
    metrics = train(cfg)
    assert wandb.run is None  # finished
    # wandb.finish() returns before W&B's service process has written the whole offline file (the
    # exit record was missing under load): stop the service, which flushes it, before reading.
    wandb.teardown()
    runs = list((tmp_path / "run" / "wandb").glob(f"offline-run-*-{wid}"))
    assert len(runs) == 1
    run = read_offline_run(runs[0])
    assert (run["run"].run_group, run["run"].job_type, list(run["run"].tags)) == (
        "train",
        "imdn-bam-x2",
        ["imdn", "bam", "x2"],
    )
    assert run["run"].display_name == "imdn-bam-x2-seed123-demo" and run["exit_code"] == 0
    summary = run["summary"]
    assert summary["test/demo_test/psnr"] == pytest.approx(metrics["test/demo_test/psnr"], abs=1e-6)
    for key in ("train/loss_step", "train/loss_epoch", "lr-Adam", "val/psnr", "val/ssim", "test/demo_test/ssim"):
        assert key in summary, sorted(summary)
    assert summary["test/results"]["_type"] == "table-file" and summary["test/results"]["nrows"] == len(SPLITS["test"])
    samples = summary["val/samples"]  # bicubic | SR | HR crops of the first validation images
    assert samples["_type"] == "images/separated" and samples["count"] == 1, samples  # demo_val: 1 image
    assert samples["width"] == 3 * 128 + 2 * 4 and samples["height"] == 128
    table = json.loads((runs[0] / "files" / summary["test/results"]["path"]).read_text())
    assert sorted(row[2] for row in table["data"]) == sorted(SPLITS["test"])
    saved = run["config"]["config"]  # the resolved run config, plain data
    assert saved["model"]["name"] == "imdn" and saved["run_name"] == "imdn-bam-x2-seed123-demo"

    # a failing job still finishes its run, marked failed
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(LitSR, "training_step", boom)
    cfg = compose_train(tmp_path / "failed", SHRINK + ["logger=wandb", "seed=7"])
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg)
    assert wandb.run is None
    wandb.teardown()
    (failed,) = (tmp_path / "failed" / "run" / "wandb").glob(f"offline-run-*-{cfg.logger.wandb.id}")
    assert read_offline_run(failed)["exit_code"] == 1


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_counts_each_test_image_once(tmp_path: Path, cache: Path) -> None:
    from lit_sisr.training import build

    # demo_test has 6 images, `three` 3: split over 2 ranks, a padding sampler would score one twice
    test_sets = (
        f"+data.test=[{{name:demo_test,hr_dir:'{cache}/demo/test'}},"
        f"{{name:three,hr_dir:'{cache}/demo/train',split:[0,3]}}]"
    )
    val = ["data.val.name=two", f"data.val.hr_dir={cache}/demo/train", "+data.val.split=[3,5]"]  # 1 image per rank
    args = [*SHRINK, "trainer.max_epochs=1", "~data.test", test_sets, *val]  # a list of sets instead of conf/testsets
    cli("trainer=ddp", "trainer.devices=2", *args, cwd=tmp_path)
    out = tmp_path / "logs" / "train" / "runs" / "imdn-bam-x2-seed123-demo"
    rows = list(csv.DictReader((out / "test_results.csv").open()))
    assert [(r["set"], r["image"]) for r in rows] == [
        *[("demo_test", name) for name in sorted(SPLITS["test"])],
        *[("three", name) for name in sorted(SPLITS["train"])[:3]],
    ]
    ddp_metrics = json.loads((out / "done.json").read_text())["metrics"]
    (best,) = (out / "checkpoints").glob("best-*.ckpt")

    # the same checkpoint tested by one process
    cfg = compose_train(tmp_path / "one", args + ["trainer.devices=1", "logger=none"])
    datamodule, model, trainer = build(cfg)
    trainer.test(model, datamodule=datamodule, ckpt_path=str(best), weights_only=True, verbose=False)
    single = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert len(model.test_rows) == len(rows)
    for one, row in zip(model.test_rows, rows):
        assert (one["set"], one["image"]) == (row["set"], row["image"])
        assert one["psnr"] == pytest.approx(float(row["psnr"]), abs=1e-5)
        assert one["ssim"] == pytest.approx(float(row["ssim"]), abs=1e-5)
    for name in ("demo_test", "three"):
        for key in ("psnr", "ssim", "bicubic_psnr"):
            assert ddp_metrics[f"test/{name}/{key}"] == pytest.approx(single[f"test/{name}/{key}"], abs=1e-5)


@pytest.mark.slow
def test_a_nan_on_one_ddp_rank_stops_both_ranks_at_the_same_step(tmp_path: Path, cache: Path) -> None:
    # The guard's flag is all-reduced on the device: rank 0 (finite loss) stops with rank 1, not
    # in the next gradient all-reduce (a hang).
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO / "tests")}
    env.pop("HYDRA_FULL_ERROR", None)
    inject = [
        "+callbacks.nan_once._target_=fault_injection.NaNBatchOnRank",
        "+callbacks.nan_once.rank=1",
        "+callbacks.nan_once.step=0",
    ]
    val = ["data.val.name=two", f"data.val.hr_dir={cache}/demo/train", "+data.val.split=[3,5]"]  # 1 image per rank
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "trainer=ddp",
            "trainer.devices=2",
            *SHRINK,
            "trainer.max_epochs=1",
            "test=false",
            *val,
            *inject,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "training loss is nan at step 1 (epoch 0, batch 1)" in output, output[-3000:]
    assert "training loss is non-finite on another rank at step 1 (epoch 0, batch 1)" in output, output[-3000:]


@pytest.mark.slow
def test_submitit_local_sweep_of_two_ddp_jobs(tmp_path: Path, cache: Path) -> None:
    # the SLURM path on one machine: one submitit job per configuration, one task per device; each
    # job is a 2-process DDP run (tasks_per_node = trainer.devices), in its config-named folder
    done = cli(
        "hydra/launcher=local",
        "experiment=control_grid",
        "debug=smoke",
        "model=pan,imdn",
        "attention=bam",
        "scale=2",
        *TINY,
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        cwd=tmp_path,
    )
    assert "Submitit 'local': 2 of 2 jobs to run" in done.stdout
    sweep = tmp_path / "logs" / "control_grid" / "multirun"
    for model in ("pan", "imdn"):
        out = sweep / f"{model}-bam-x2-seed123-demo"
        log = (out / "train.log").read_text()
        assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
        rows = list(csv.DictReader((out / "test_results.csv").open()))
        assert sorted(r["image"] for r in rows) == sorted(SPLITS["test"])  # each test image once
        assert json.loads((out / "done.json").read_text())["metrics"]["test/demo_test/psnr"] > 0


def test_slurm_launcher_config_runs_one_task_per_gpu_and_requeues(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    cfg = compose_train(
        tmp_path,
        [
            "experiment=control_grid",
            "hydra/launcher=slurm",
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "hydra.launcher.partition=gpu",
        ],
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["tasks_per_node"], launcher["gpus_per_node"], launcher["nodes"]) == (4, 4, 2)
    assert launcher["max_num_timeout"] > 0 and launcher["additional_parameters"] == {"requeue": True}
    assert launcher["partition"] == "gpu" and launcher["array_parallelism"] > 0 and launcher["timeout_min"] > 0
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.sweep.subdir == "imdn-bam-x2-seed123-div2k"
