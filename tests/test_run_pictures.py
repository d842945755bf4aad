"""``curves.png`` and ``samples.png`` beside a run's results: what they were drawn from, and that
a resumed run still draws its whole history."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from lit_sisr.run_pictures import RunPictures
from lit_sisr.training import build, train

from helpers import SHRINK, compose_train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_run_draws_its_curves_and_samples(tmp_path: Path, cache: Path, capsys) -> None:  # noqa: F811
    overrides = SHRINK + ["trainer.log_every_n_steps=1", "callbacks.run_pictures.num_images=2"]
    train(compose_train(tmp_path, overrides))
    out = tmp_path / "run"
    printed = capsys.readouterr().out
    for name in ("curves.png", "samples.png"):
        assert f"Picture: {out / name}" in printed
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width > 400 and im.height > 200
    assert not list(out.glob(".*.tmp"))

    # the curves are the logged values: each step's loss, one validation PSNR per epoch (x: steps
    # done, the CSV logger's step + 1); the record travels in the checkpoints
    logged = [r for r in csv.DictReader((out / "csv" / "metrics.csv").open()) if r.get("train/loss_step")]
    steps_per_epoch = len(logged) // 2
    state, step = _callback_state(out / "checkpoints" / "last.ckpt")
    assert [(s, round(v, 5)) for s, v in state["losses"]] == [
        (int(r["step"]) + 1, round(float(r["train/loss_step"]), 5)) for r in logged if int(r["step"]) < step
    ]
    assert [s for s, _ in state["val_psnr"]] == list(range(steps_per_epoch, step + 1, steps_per_epoch))
    assert 20 < state["val_bicubic"] < 45

    # resumed from that checkpoint for one more epoch: its history is kept and continued
    cfg = compose_train(tmp_path, overrides + ["trainer.max_epochs=3", "logger=none"])
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(out / "checkpoints" / "last.ckpt"), weights_only=True)
    (callback,) = [c for c in trainer.callbacks if isinstance(c, RunPictures)]
    assert callback.losses[: len(state["losses"])] == [tuple(x) for x in state["losses"]]
    assert [s for s, _ in callback.losses] == list(range(1, 3 * steps_per_epoch + 1))
    assert [s for s, _ in callback.val_psnr] == [steps_per_epoch, 2 * steps_per_epoch, 3 * steps_per_epoch]
    assert callback.val_bicubic == state["val_bicubic"]
    assert callback.written == [out / "curves.png", out / "samples.png"]


def _callback_state(path: Path) -> dict:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("RunPictures")]
    return state, ckpt["global_step"]
