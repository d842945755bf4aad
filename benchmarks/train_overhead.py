"""Training-step overhead of LitSR + Lightning Trainer over a bare PyTorch loop.

The same network, batch, optimizer (Adam, lr 1e-4) and L1 loss, for the same number of steps,
on the same in-memory batches (random, batch 16, LR patch 64: the data path is benchmarked
separately), through

- ``bare``: ``zero_grad; l1(net(lr), hr).backward(); step`` in a Python loop;
- ``trainer``: the project's own path, :func:`lit_sisr.training.build` on the composed Hydra
  config (``conf/train.yaml``: CSV logger, TQDM progress bar, ``log_every_n_steps``, LR monitor),
  ``trainer.fit`` with validation off (checkpoints as configured: written after the clock stops).

Each step is clocked from its start to the next step's start (fetching, hooks, logging and
progress bar included), leaving out the first ``--warmup`` steps; Lightning's start-up and
teardown (including the warm-up steps) are reported apart. Each repeat runs both variants in
turn, alternating which goes first. Reported: the overhead ratio (median trainer step over median
bare step: medians resist the load spikes of a shared machine), the per-repeat ratios of total
timed time (the spread), and Lightning's + the project's cost per step, trainer minus bare, both
as a difference of medians and of means (the mean includes the periodic work: a log write every
``log_every_n_steps``, a progress-bar redraw every ``refresh_rate`` steps).

Networks: IMDN x4 as configured (the paper's) and EDSR x2 *baseline* (16 blocks x 64 features):
the configured EDSR (32 x 256, 40 M parameters) takes minutes per step on a CPU. A smaller
network gives a *stricter* ratio (Lightning's per-step cost is fixed), so the baseline bounds the
large one. ``tiny`` (IMDN 16 features, 2 blocks, LR patch 16; 60 timed steps per ``--steps``)
shows the per-step cost in ms.

    python benchmarks/train_overhead.py [--models tiny imdn_x4 edsr_x2] [--steps 1] [--warmup 1] [--repeats 3]

Default run: about 3 minutes on two idle CPU cores (IMDN x4 and EDSR x2 take 5-9 s per step at
batch 16); ``--steps 2`` (docs/benchmarks.md) doubles the timed part.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_arg, footer, header, median, parse, table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# name -> (Hydra overrides, LR patch, steps multiplier)
MODELS = {
    "tiny": (["model=imdn", "scale=2", "model.n_feats=16", "model.n_blocks=2"], 16, 60),
    "imdn_x4": (["model=imdn", "attention=original", "scale=4"], 64, 1),
    "edsr_x2": (["model=edsr", "attention=original", "scale=2", "model.n_resblocks=16", "model.n_feats=64"], 64, 1),
}


class Batches(Dataset):
    """A few fixed batches, cycled (``batch_size=None`` loaders)."""

    def __init__(self, n: int, batch: int, patch: int, scale: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.items = [
            (
                torch.rand(batch, 3, patch, patch, generator=g),
                torch.rand(batch, 3, patch * scale, patch * scale, generator=g),
            )
            for _ in range(4)
        ]
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.items[i % len(self.items)]


def compose_cfg(overrides: list[str], out: Path):
    import lit_sisr

    lit_sisr.register_resolvers()  # the ${lit_sisr.*:} resolvers of conf/
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.runtime.cwd = str(out)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


class StepClock(pl.Callback):
    """The time at the start of each training batch, and at the end of the last one (not at the
    end of training: the epoch-end checkpoint and logging are not a step's cost)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.end = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()

    @property
    def marks(self) -> list[float]:
        return [*self.starts, self.end]


def step_times(marks: list[float], warmup: int) -> list[float]:
    """Seconds per step from one step's start to the next's (everything between two steps is
    charged to a step: fetching, hooks, logging), warm-up steps left out."""
    return [b - a for a, b in zip(marks[warmup:], marks[warmup + 1 :])]


def run_trainer(cfg, init_state: dict, data: Batches, warmup: int) -> tuple[list[float], float]:
    from lit_sisr.training import build

    _, model, trainer = build(cfg)
    model.net.load_state_dict(init_state)
    clock = StepClock()
    trainer.callbacks.append(clock)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # progress bar
        trainer.fit(model, train_dataloaders=DataLoader(data, batch_size=None))
    total = time.perf_counter() - start
    steps = step_times(clock.marks, warmup)
    return steps, total - sum(steps)


def run_bare(net: torch.nn.Module, init_state: dict, data: Batches, warmup: int) -> list[float]:
    net.load_state_dict(init_state)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    marks = []
    for lr, hr in DataLoader(data, batch_size=None):
        marks.append(time.perf_counter())
        optimizer.zero_grad()
        loss = F.l1_loss(net(lr), hr)
        loss.backward()
        optimizer.step()
    if lr.is_cuda:
        torch.cuda.synchronize()
    marks.append(time.perf_counter())
    return step_times(marks, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per repeat (x60 for tiny)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", help="trainer.accelerator (auto, cpu, gpu)")
    add_threads_arg(parser)
    args = parse(parser)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    device = torch.device("cuda" if args.device in ("auto", "gpu") and torch.cuda.is_available() else "cpu")
    header(f"Training-step overhead: LitSR + Trainer vs a bare loop ({device.type})")
    rows = []
    for name in args.models:
        overrides, patch, mult = MODELS[name]
        steps, warmup = args.steps * mult, args.warmup * mult
        out = Path(tempfile.mkdtemp(prefix="lit_sisr_bench_"))
        cfg = compose_cfg(
            overrides
            + [
                f"+trainer.max_steps={steps + warmup}",
                "trainer.max_epochs=-1",
                "+trainer.limit_val_batches=0",
                "test=false",
                f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
            ],
            out,
        )
        scale = int(cfg.scale)
        data = Batches(steps + warmup, args.batch, patch, scale)
        if device.type == "cuda":
            data.items = [(a.to(device), b.to(device)) for a, b in data.items]
        from lit_sisr.training import build

        net = build(cfg)[1].net.to(device)
        init_state = copy.deepcopy(net.state_dict())
        bare, trainer, fixed, ratios, means = [], [], [], [], []
        for repeat in range(args.repeats):
            # alternate which variant goes first, so that a drift in load or memory state hits both
            if repeat % 2 == 0:
                b = run_bare(net, init_state, data, warmup)
                t, f = run_trainer(cfg, init_state, data, warmup)
            else:
                t, f = run_trainer(cfg, init_state, data, warmup)
                b = run_bare(net, init_state, data, warmup)
            bare += b
            trainer += t
            fixed.append(f)
            ratios.append(sum(t) / sum(b))
            means.append(sum(t) / len(t) - sum(b) / len(b))
        shutil.rmtree(out, ignore_errors=True)
        rows.append(
            (
                name,
                f"x{scale}",
                f"{args.batch} x {patch}px",
                f"{steps} x {args.repeats}",
                f"{1000 * median(bare):.1f}",
                f"{1000 * median(trainer):.1f}",
                f"{median(trainer) / median(bare):.3f}",
                f"{min(ratios):.3f}-{max(ratios):.3f}",
                f"{1000 * (median(trainer) - median(bare)):.2f}",
                f"{1000 * median(means):.2f} ({1000 * min(means):.2f} to {1000 * max(means):.2f})",
                f"{median(fixed):.1f}",
            )
        )
    print()
    print(
        table(
            [
                "network",
                "scale",
                "batch",
                "timed steps x repeats",
                "bare ms/step (median)",
                "trainer ms/step (median)",
                "overhead ratio",
                "ratio per repeat",
                "trainer - bare ms/step (medians)",
                "trainer - bare ms/step (means; per repeat)",
                "trainer start+end s",
            ],
            rows,
        )
    )
    print()
    footer()


if __name__ == "__main__":
    main()
