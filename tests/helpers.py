"""Helpers shared by test modules (test modules never import each other)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from lit_sisr.backbones import BACKBONES, build_backbone

from refdata import REPO

EDSR = dict(BACKBONES.get("edsr").tiny)


def tiny_edsr(attention: str = "none", **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone("edsr", 2, attention, **EDSR, **options).eval()


def lit_checkpoint(path: Path, net: torch.nn.Module, attention: str = "none") -> Path:
    """A lit-sisr checkpoint as training writes it: ``net.``-prefixed weights and the run config."""
    model = {
        "_target_": "lit_sisr.backbones.build_backbone",
        "name": "edsr",
        "scale": 2,
        "attention": {"_target_": "lit_sisr.attention.AttentionFactory", "name": attention},
        **EDSR,
    }
    config = {"model": model, "attention": {"name": attention}, "scale": 2}
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "hyper_parameters": {"config": config}},
        path,
    )
    return path


# --- the real Hydra configs, shrunk (tests/test_train.py and the other end-to-end tests)
# A tiny IMDN (the default network) or PAN: `model.n_feats` / `model.n_blocks` exist in both.
TINY = ["model.n_feats=16", "model.n_blocks=2"]
# On small demo patches: the whole pipeline in seconds.
RUN = [
    "data.patch_size=16",
    "data.repeat=1",
    "data.batch_size=3",
    "trainer.max_epochs=2",
    "trainer.check_val_every_n_epoch=1",
    "trainer.accelerator=cpu",
    "~callbacks.progress_bar",
    "+trainer.enable_progress_bar=false",
]
SHRINK = TINY + RUN


def compose_train(tmp_path: Path, overrides: list[str], config_name: str = "train") -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.hydra.runtime.cwd = str(tmp_path)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


# --- exact resume (tests/test_resume.py, tests/test_preemption.py)
# A tiny IMDN without attention (BAM is 6x slower on CPU and changes nothing here); 11 demo training
# photos / batch 2 = 6 batches per epoch (the last one of a single patch), 2 epochs; a
# mid-epoch last.ckpt every 4 steps; EMA on; the learning rate halves every epoch (scheduler state matters).
RESUME = SHRINK + [
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
]


def probe(record: Path, pause_at: int | None = None) -> str:
    """The override that adds :class:`fault_injection.BatchProbe`, recording to ``record``."""
    pause = f",pause_at:{pause_at}" if pause_at is not None else ""
    return f"+callbacks.probe={{_target_:fault_injection.BatchProbe,record:'{record}'{pause}}}"


def steps(record: Path) -> list[tuple[int, str]]:
    return [(int(a), b) for a, b in (line.split() for line in record.read_text().splitlines())]


def wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} never appeared (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def start_train(args: list[str], cwd: Path, extra_env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    """train.py in a subprocess; output to a file (DataLoader workers outlive a SIGKILLed parent
    for a moment and would hold a pipe open)."""
    log = cwd / "train.log.txt"
    env = {
        **os.environ,
        "HYDRA_FULL_ERROR": "1",
        "WANDB_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
        **(extra_env or {}),
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return proc, log


# --- W&B offline runs (tests/test_sweeps.py, tests/test_slurm.py, tests/test_preemption.py)
def read_offline_run(run_dir: Path) -> dict:
    """The run record, config, summary and exit code of an offline W&B run, read from its
    ``run-<id>.wandb`` file (wandb >= 0.19 writes no wandb-summary.json offline, and ``wandb.Api``
    reads only the server). The file is a LevelDB-style log of ``Record`` protobufs: a 7-byte
    header, then 32 KiB blocks of chunks (crc32 u32, length u16, type u8: 1 full, 2 first, 3 middle, 4 last)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    out: dict = {"config": {}, "summary": {}, "exit_code": None, "preempting": False}
    pos, block, chunk = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += left
            continue
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind not in (1, 4):
            continue
        record = pb.Record()
        record.ParseFromString(chunk)
        chunk = b""
        which = record.WhichOneof("record_type")
        if which == "run":
            out["run"] = record.run
        elif which == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif which == "summary":
            for u in record.summary.update:
                keys = list(u.nested_key) or [u.key]
                node = out["summary"]
                for k in keys[:-1]:
                    node = node.setdefault(k, {})
                node[keys[-1]] = json.loads(u.value_json)
        elif which == "exit":
            out["exit_code"] = record.exit.exit_code
        elif which == "preempting":
            out["preempting"] = True
    return out


# --- the metric protocol (tests/test_metrics.py, tests/test_protocols.py)
GOLDEN = {  # protocol.md: bicubic upscaling of the shared LR files, Y-PSNR / SSIM
    ("Set5", 2): (33.673, 0.9303),
    ("Set5", 3): (30.403, 0.8689),
    ("Set5", 4): (28.429, 0.8111),
    ("Set14", 2): (30.325, 0.8699),
    ("Set14", 3): (27.631, 0.7759),
    ("Set14", 4): (26.088, 0.7048),
    ("B100", 2): (29.553, 0.8433),
    ("B100", 3): (27.202, 0.7389),
    ("B100", 4): (25.955, 0.6678),
}
