"""End to end: the real Hydra configs, shrunk, through training, testing, resume and eval."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from lit_sisr.data.demo import SPLITS
from lit_sisr.training import ConfigError, check_launch, train

from helpers import RUN, SHRINK, compose_train
from refdata import BENCHMARK, REPO, need


def test_train_test_and_resume(tmp_path: Path, cache: Path) -> None:
    cfg = compose_train(tmp_path, SHRINK)
    metrics = train(cfg)
    out = tmp_path / "run"
    assert torch.isfinite(torch.tensor(metrics["test/demo_test/psnr"]))
    # bicubic on the demo test photos is a fixed number: the baseline column is computed, not copied
    assert 25 < metrics["test/demo_test/bicubic_psnr"] < 40
    saved = OmegaConf.load(out / "config.yaml")  # resolved: no interpolations left
    assert saved.model.name == "imdn" and saved.scale == 2 and saved.data.train.hr_dir.startswith(str(cache))
    rows = list(csv.DictReader((out / "test_results.csv").open()))
    assert sorted(r["image"] for r in rows) == sorted(SPLITS["test"])
    mean = sum(float(r["psnr"]) for r in rows) / len(rows)
    assert mean == pytest.approx(metrics["test/demo_test/psnr"], abs=1e-4)  # per-image mean

    last = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)  # plain data only
    steps = ckpt["global_step"]
    assert ckpt["epoch"] == 1 and ckpt["hyper_parameters"]["config"]["model"]["name"] == "imdn"
    assert len(list((out / "checkpoints").glob("best-*.ckpt"))) == 1

    # a re-run with more epochs continues from last.ckpt instead of starting over
    cfg = compose_train(tmp_path, SHRINK + ["trainer.max_epochs=3"])
    train(cfg)
    resumed = torch.load(last, map_location="cpu", weights_only=True)
    # written at the third validation, whether or not it was the best
    assert resumed["epoch"] == 2 and resumed["global_step"] == steps * 3 // 2


def test_bicubic_model_is_tested_without_training(tmp_path: Path, cache: Path) -> None:
    cfg = compose_train(tmp_path, RUN + ["model=bicubic", "attention=none", "scale=3"])
    metrics = train(cfg)
    assert metrics["test/demo_test/psnr"] == pytest.approx(metrics["test/demo_test/bicubic_psnr"], abs=1e-6)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_eval_of_a_checkpoint_and_of_official_weights(tmp_path: Path, cache: Path) -> None:
    need(BENCHMARK / "Set5", "benchmark Set5")
    from lit_sisr.evaluate_cli import evaluate

    cfg = compose_train(tmp_path, SHRINK + ["trainer.max_epochs=1", "test=false"])
    train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cfg = compose_train(tmp_path / "e1", [f"ckpt={ckpt}", "sets=[Set5]", f"benchmark_dir={BENCHMARK}"], "eval")
    rows = evaluate(cfg)
    assert [r["image"] for r in rows] == ["baby", "bird", "butterfly", "head", "woman"]
    assert (tmp_path / "e1" / "run" / "test_results.csv").is_file()
    saved = OmegaConf.load(tmp_path / "e1" / "run" / "config.yaml")  # the checkpoint's network, not eval's defaults
    assert saved.model.n_feats == 16 and saved.attention.name == "bam" and saved.task_name == "eval"
    cfg = compose_train(
        tmp_path / "e2",
        ["model=bicubic", "attention=none", "scale=4", "sets=[Set5]", f"benchmark_dir={BENCHMARK}"],
        "eval",
    )
    rows = evaluate(cfg)
    assert sum(r["psnr"] for r in rows) / 5 == pytest.approx(28.429, abs=0.005)


def test_ddp_inside_a_local_sweep_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    # the 6 demo test photos as the validation set too: 2 processes may score it (checked separately)
    cfg = compose_train(tmp_path, ["trainer=ddp", "data.val.hr_dir=${paths.cache_dir}/demo/test"])
    with pytest.raises(ConfigError, match="trainer.strategy=ddp cannot run inside a local `-m` sweep.*ddp_spawn"):
        check_launch(cfg, multirun=True)
    check_launch(cfg, multirun=False)
    with open_dict(cfg):
        cfg.protocol = "bam"
    with pytest.raises(ConfigError, match="protocol=bam is unknown; expected one of: standard, bam_paper"):
        check_launch(cfg, multirun=False)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_cli_runs_and_prints_the_test_table(tmp_path: Path, cache: Path) -> None:
    done = run_cli(*SHRINK, "trainer.max_epochs=1", "attention=msam", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "demo_test" in done.stdout and "bicubic" in done.stdout
    out = tmp_path / "logs" / "train" / "runs" / "imdn-msam-x2-seed123-demo"
    assert f"Outputs: {out}" in done.stdout and (out / "test_results.csv").is_file()


def test_cli_unknown_names_list_the_valid_ones(tmp_path: Path) -> None:
    done = run_cli("model=imdnn", cwd=tmp_path)
    assert done.returncode != 0
    assert "Could not find 'model/imdnn'" in done.stderr and "imdn" in done.stderr and "edsr" in done.stderr
    done = run_cli("attention=bma", cwd=tmp_path)
    assert "Could not find 'attention/bma'" in done.stderr and "bam_star" in done.stderr


def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path: Path, cache: Path) -> None:
    cfg = compose_train(tmp_path / "a", SHRINK + ["trainer.max_epochs=1", "test=false"])
    train(cfg)
    source = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    # lr 0: the fine-tuning run keeps exactly the weights it started from
    cfg = compose_train(
        tmp_path / "b", SHRINK + ["trainer.max_epochs=1", "test=false", "optimizer.lr=0", f"init_from={source}"]
    )
    train(cfg)
    # the network's weights (the rest of state_dict is the runs' own: the running training-loss mean)
    before, after = (
        {k: v for k, v in torch.load(path, weights_only=True)["state_dict"].items() if k.startswith("net.")}
        for path in (source, tmp_path / "b" / "run" / "checkpoints" / "last.ckpt")
    )
    assert before and before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_drln_finetune_experiment_is_the_papers_adddata_run(tmp_path: Path) -> None:
    cfg = compose_train(tmp_path, ["experiment=drln_finetune", "scale=4"])
    assert (cfg.model.name, cfg.attention.name, cfg.data.name) == ("drln", "bam", "flickr2k")
    assert cfg.optimizer.lr == 6e-5 and cfg.scheduler is None and cfg.trainer.max_epochs == 100
    assert cfg.data.train.hr_dir.endswith("Flickr2K/Flickr2K_HR") and cfg.data.val.name == "div2k_val"
    assert cfg.run_name == "drln-bam-x4-seed123-flickr2k"
