"""A researcher's own attention module, outside the package, across every network.

Exactly what the README's "Add your own attention" says: one Python file with a class taking
``channels`` first, one YAML in the user's own config folder, ``hydra.searchpath`` pointing there
and the file on PYTHONPATH. Training and testing (every backbone with attention sites, smoke
size, one multirun), ``eval.py`` on a checkpoint, the models table, the exact-tiling refusal
(the module does not declare itself local) and ``report.py`` then work with no edit to lit-sisr.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from lit_sisr.backbones import BACKBONES, native_attention
from lit_sisr.data.demo import SPLITS
from lit_sisr.inference import NotTileableError, tiled_forward

from refdata import BENCHMARK, REPO, need

TOY = '''
import torch
from torch import nn


class ToyAttention(nn.Module):
    """x * sigmoid(w * mean over the image + b) per channel: global, and it does not say local."""

    def __init__(self, channels, gain=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, channels, 1, 1), float(gain)))
        self.shift = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return x * torch.sigmoid(self.scale * x.mean(dim=(2, 3), keepdim=True) + self.shift)
'''
YAML = """# my_conf/attention/toy.yaml
_target_: lit_sisr.attention.AttentionFactory
name: toy
class_path: toy_attention.ToyAttention
"""
# Every network with attention sites (bicubic has none).
MODELS = [name for name in BACKBONES.names() if native_attention(name)]

pytestmark = pytest.mark.slow  # one 12-job smoke sweep in a subprocess


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory) -> Iterator[Path]:
    """The user's folder: toy_attention.py and my_conf/attention/toy.yaml, nothing else."""
    folder = tmp_path_factory.mktemp("user")
    (folder / "toy_attention.py").write_text(TOY)
    (folder / "my_conf" / "attention").mkdir(parents=True)
    (folder / "my_conf" / "attention" / "toy.yaml").write_text(YAML)
    with pytest.MonkeyPatch.context() as patch:  # importable here too, as on the user's PYTHONPATH
        patch.syspath_prepend(str(folder))
        yield folder


def _env(folder: Path) -> dict[str, str]:
    path = os.pathsep.join([str(folder), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    cache = os.environ.get("LIT_SISR_CACHE") or str(folder.parent / "cache")
    return {**os.environ, "PYTHONPATH": path, "LIT_SISR_CACHE": cache, "WANDB_MODE": "disabled"}


def _run(script: str, *args: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=folder,
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def sweep(user_folder: Path) -> Path:
    """``train.py -m attention=toy model=<every network> debug=smoke`` with tiny widths."""
    done = _run(
        "train.py",
        "-m",
        "attention=toy",
        f"model={','.join(MODELS)}",
        "debug=smoke",
        "+model.tiny=true",
        f"hydra.searchpath=[file://{user_folder / 'my_conf'}]",
        folder=user_folder,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return user_folder / "logs" / "train" / "multirun"


def test_every_network_trains_and_tests_with_the_users_attention(sweep: Path) -> None:
    for model in MODELS:
        run = sweep / f"{model}-toy-x2-seed123-demo"
        saved = OmegaConf.load(run / "config.yaml")
        assert saved.attention.class_path == "toy_attention.ToyAttention"
        rows = list(csv.DictReader((run / "test_results.csv").open()))
        # Both demo test photos scored (2 training steps: the figures only have to be real numbers).
        assert sorted(r["image"] for r in rows) == sorted(SPLITS["test"]), model
        assert all(math.isfinite(float(r["psnr"])) and float(r["bicubic_psnr"]) > 20 for r in rows), model
        # The toy module sits at the network's sites: two parameter tensors of `channels` each.
        net = hydra.utils.instantiate(saved.model)
        sites = [m for m in net.modules() if type(m).__name__ == "ToyAttention"]
        assert sites and len(sites) == sum(1 for n in net.state_dict() if n.endswith(".shift")), model


def test_eval_py_scores_a_checkpoint_of_the_users_network(sweep: Path, user_folder: Path) -> None:
    need(BENCHMARK / "Set5", "benchmark Set5")
    ckpt = sweep / "rcan-toy-x2-seed123-demo" / "checkpoints" / "last.ckpt"
    done = _run("eval.py", f"ckpt={ckpt}", "sets=[Set5]", f"benchmark_dir={BENCHMARK}", folder=user_folder)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rcan-toy x2" in done.stdout  # the checkpoint's network, named in the table
    (results,) = (user_folder / "logs" / "eval").rglob("test_results.csv")
    rows = list(csv.DictReader(results.open()))
    assert sorted(r["image"] for r in rows) == ["baby", "bird", "butterfly", "head", "woman"]


def test_tiling_refuses_the_undeclared_module_and_the_models_table_counts_it(sweep: Path) -> None:
    from lit_sisr import models_table

    net = hydra.utils.instantiate(OmegaConf.load(sweep / "edsr-toy-x2-seed123-demo" / "config.yaml").model)
    with pytest.raises(NotTileableError, match=r"att \(toy: not declared local"):
        tiled_forward(net.eval(), torch.rand(1, 3, 20, 20), 8)
    # models_table --attention NAME=CLASS_PATH: params of IMDN (6 sites of 64 channels) with it.
    (row,) = models_table.rows(["imdn"], ["toy=toy_attention.ToyAttention"], [2], lr_size=(16, 16))
    (base,) = models_table.rows(["imdn"], ["none"], [2], lr_size=(16, 16))
    assert row["attention"] == "toy" and row["params"] - base["params"] == 6 * 2 * 64


def test_report_py_tables_the_users_runs(sweep: Path, user_folder: Path, tmp_path: Path) -> None:
    done = _run(
        "report.py", str(sweep), "--out", str(tmp_path), "--no-figures", "--bootstrap", "50", folder=user_folder
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # One ablation table per network (Table 3 for IMDN), each with a measured toy row.
    tables = sorted((tmp_path / "tables").glob("*.csv"))
    assert len(tables) == len(MODELS)
    for table in tables:
        rows = [r for r in csv.DictReader(table.open()) if r["attention"] == "toy"]
        assert len(rows) == 1 and rows[0]["status"] == "ok" and int(rows[0]["params"]) > 0, table.name
