"""One evaluator: eval.py and the Lightning test loop give the same rows; HR-only sets; evaluation
that shows its work (progress, total time, saved SR images)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lit_sisr.backbones import build_backbone
from lit_sisr.data.datasets import ImageSet, PairedImages
from lit_sisr.data.io import ImageError, read_image, to_float
from lit_sisr.scoring import evaluate_set

from refdata import BENCHMARK, benchmark_set, need


@pytest.fixture()
def hr_only(tmp_path: Path) -> Path:
    """A copy of Set5 with its HR folder only (no LR_bicubic): an HR-only benchmark root."""
    need(BENCHMARK / "Set5", "benchmark Set5")
    shutil.copytree(BENCHMARK / "Set5" / "HR", tmp_path / "bench" / "Set5" / "HR")
    return tmp_path / "bench"


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_hr_only_set_gets_the_stored_lr_bit_for_bit(hr_only: Path, scale: int) -> None:
    stored = PairedImages(benchmark_set("Set5", scale), scale)
    made = PairedImages(
        ImageSet("Set5", str(hr_only / "Set5" / "HR"), str(hr_only / "Set5" / "LR_bicubic" / f"X{scale}")), scale
    )
    assert (stored.lr_source, made.lr_source) == ("stored", "bicubic")
    for (lr_s, hr_s, _), (lr_m, hr_m, _) in zip(stored, made):
        assert torch.equal(lr_s, lr_m) and torch.equal(hr_s, hr_m)  # the shared LR files are MATLAB bicubic


def test_hr_only_figures_equal_the_stored_lr_figures(hr_only: Path) -> None:
    net = build_backbone("bicubic", 4)
    stored = evaluate_set(net, benchmark_set("Set5", 4), 4)
    made = evaluate_set(net, ImageSet("Set5", str(hr_only / "Set5" / "HR"), str(hr_only / "Set5" / "nothing")), 4)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "lr_source"} for r in rows]  # noqa: E731
    assert strip(made) == strip(stored)
    assert {r["lr_source"] for r in stored} == {"stored"} and {r["lr_source"] for r in made} == {"bicubic"}
    assert sum(r["psnr"] for r in made) / 5 == pytest.approx(28.429, abs=0.005)  # the golden table's Set5 x4


def test_a_set_with_some_lr_files_missing_is_refused(hr_only: Path) -> None:
    lr = hr_only / "Set5" / "LR_bicubic" / "X2"
    lr.mkdir(parents=True)
    shutil.copy(BENCHMARK / "Set5" / "LR_bicubic" / "X2" / "babyx2.png", lr)
    with pytest.raises(ImageError, match=r"birdx2.png in .*X2 \(1 of 5 present\)"):
        PairedImages(ImageSet("Set5", str(hr_only / "Set5" / "HR"), str(lr)), 2)


def test_eval_of_an_hr_only_set_says_so_and_saves_the_sr_images(tmp_path: Path, hr_only: Path, capsys) -> None:
    from lit_sisr.evaluate_cli import evaluate

    from helpers import compose_train

    cfg = compose_train(
        tmp_path,
        ["model=bicubic", "attention=none", "scale=3", "sets=[Set5]", f"benchmark_dir={hr_only}", "save_images=true"],
        "eval",
    )
    rows = evaluate(cfg)
    out = tmp_path / "run"
    assert OmegaConf.load(out / "config.yaml").lr_source == {"Set5": "bicubic"}
    saved = list(csv.DictReader((out / "test_results.csv").open()))
    assert [r["lr_source"] for r in saved] == ["bicubic"] * 5
    assert sum(float(r["psnr"]) for r in saved) / 5 == pytest.approx(30.403, abs=0.005)  # golden Set5 x3
    # each SR output as the PNG that was scored: re-scoring the file gives the row's figure
    from lit_sisr.metrics import psnr_y

    (row,) = [r for r in rows if r["image"] == "bird"]
    png = read_image(out / "images" / "Set5" / "bird_x3.png")
    hr = read_image(hr_only / "Set5" / "HR" / "bird.png")[:, : png.shape[1], : png.shape[2]]
    assert float(psnr_y(to_float(png)[None], to_float(hr)[None], 3)) == pytest.approx(row["psnr"], abs=1e-9)
    assert len(list((out / "images" / "Set5").glob("*_x3.png"))) == 5
    shown = capsys.readouterr()
    assert "Set5 x3" in shown.err and "images/s" in shown.err  # the progress bar
    assert "Evaluated 5 image(s) in" in shown.out and "no LR files for Set5" in shown.out


def test_training_test_loop_and_eval_give_the_same_rows(tmp_path: Path, hr_only: Path, monkeypatch) -> None:
    """The Lightning test loop and eval.py share one code path: identical rows, HR-only set included."""
    monkeypatch.setenv("LIT_SISR_CACHE", str(tmp_path / "cache"))
    from lit_sisr.evaluate_cli import evaluate
    from lit_sisr.training import train

    from helpers import RUN, compose_train

    cfg = compose_train(
        tmp_path / "t",
        RUN
        + [
            "model=bicubic",
            "attention=none",
            "scale=2",
            "testsets@data.test=benchmark",
            f"data.test.benchmark_dir={hr_only}",
            "data.test.sets=[Set5]",
        ],
    )
    train(cfg)
    trained = list(csv.DictReader((tmp_path / "t" / "run" / "test_results.csv").open()))
    assert OmegaConf.load(tmp_path / "t" / "run" / "config.yaml").lr_source == {"Set5": "bicubic"}
    cfg = compose_train(
        tmp_path / "e",
        ["model=bicubic", "attention=none", "scale=2", "sets=[Set5]", f"benchmark_dir={hr_only}"],
        "eval",
    )
    evaluate(cfg)
    evaluated = list(csv.DictReader((tmp_path / "e" / "run" / "test_results.csv").open()))
    assert trained == evaluated and len(trained) == 5
