"""One device check (docs/benchmarks.md, "Device check"): every GPU figure of the project in one run,
written to one results file.

Parts, each a timed subprocess whose markdown output goes into the results file as it finishes (the
file is rewritten atomically after every part, so a part that runs out of time leaves the others):

- ``a``: training-step time, trainer vs bare loop (IMDN x4, EDSR x2 at batch 16, 64 px; the tiny
  network for Lightning's fixed cost per step): ``train_overhead.py``;
- ``b``: latency and peak memory of every network with its own attention vs BAM at 160 and 220 px
  LR, and the attention modules' share: ``bam_cost.py``;
- ``c``: bf16-mixed, channels_last, compile and cudnn.benchmark vs eager fp32: ``gpu_knobs.py``;
- ``d``: data path, device vs host placement: ``data_path.py``;
- ``cuda``: the CUDA-only tests (lagged finite-loss check with a pinned copy and an event; no
  host-device sync in default training steps): ``pytest tests/test_cuda.py``;
- ``e``: IMDN x2 with its own attention (CCA) vs IMDN-BAM x2, 3 seeds each (rehearsal: 1), all trained at once
  on the one device for the same number of steps on T91 (``data.placement=device``), tested on
  Set5/Set14/B100 under the standard protocol with LR made from HR by the MATLAB-exact bicubic,
  then ``report.py``'s paired bootstrap verdict.

``--rehearse`` runs every part at tiny sizes on the CPU (a few minutes; ``tests/test_device_check.py``
runs it) and writes the same results file.

    python benchmarks/device_check.py [--rehearse] [--data DIR] [--out results.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(BENCH))
SEEDS = (1, 2, 3)  # the rehearsal trains seed 1 only (two processes, not six, on two CPU cores)
VARIANTS = ("original", "bam")  # IMDN's own attention is CCA


def parts(rehearse: bool, data: Path, work: Path, steps: int) -> list[tuple[str, str, list[str], float]]:
    """(key, title, command, timeout s) of each part, full size on a GPU or tiny on the CPU."""
    py = [sys.executable]
    if rehearse:
        return [
            (
                "a",
                "a. Training step: trainer vs bare loop",
                py
                + [
                    str(BENCH / "train_overhead.py"),
                    "--models",
                    "tiny",
                    "--steps",
                    "1",
                    "--warmup",
                    "1",
                    "--repeats",
                    "1",
                    "--batch",
                    "2",
                    "--device",
                    "cpu",
                    "--threads",
                    "1",
                ],
                120,
            ),
            (
                "b",
                "b. BAM's cost: latency, peak memory, attention share",
                py
                + [
                    str(BENCH / "bam_cost.py"),
                    "--models",
                    "imdn",
                    "pan",
                    "--sizes",
                    "16",
                    "--iters",
                    "1",
                    "--repeats",
                    "1",
                    "--device",
                    "cpu",
                    "--threads",
                    "1",
                ],
                120,
            ),
            (
                "c",
                "c. Speed knobs vs eager fp32",
                py
                + [
                    str(BENCH / "gpu_knobs.py"),
                    "--models",
                    "imdn",
                    "--batch",
                    "1",
                    "--patch",
                    "8",
                    "--steps",
                    "1",
                    "--warmup",
                    "1",
                    "--repeats",
                    "1",
                    "--knobs",
                    "eager fp32",
                    "channels_last",
                    "cudnn benchmark",
                    "--device",
                    "cpu",
                    "--threads",
                    "1",
                ],
                120,
            ),
            (
                "d",
                "d. Data path: device vs host placement",
                py
                + [
                    str(BENCH / "data_path.py"),
                    "--data",
                    str(data),
                    "--set",
                    "Set5",
                    "--scales",
                    "4",
                    "--workers",
                    "0",
                    "--batches",
                    "2",
                    "--warmup",
                    "1",
                    "--repeats",
                    "1",
                    "--batch",
                    "4",
                    "--patch",
                    "16",
                    "--repeat-set",
                    "4",
                    "--device",
                    "cpu",
                    "--threads",
                    "1",
                    "--cache-dir",
                    str(work / "cache-d"),
                ],
                120,
            ),
            (
                "cuda",
                "CUDA-only tests (skipped without a GPU)",
                py + ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "tests" / "test_cuda.py")],
                120,
            ),
        ]
    # Limits: 70 + 60 + 95 + 40 + 45 s here and 170 + 40 s for part e: 520 s, under 9 minutes with installs.
    return [
        (
            "a",
            "a. Training step: trainer vs bare loop",
            py
            + [
                str(BENCH / "train_overhead.py"),
                "--models",
                "tiny",
                "imdn_x4",
                "edsr_x2",
                "--steps",
                "10",
                "--warmup",
                "3",
                "--repeats",
                "3",
                "--device",
                "gpu",
            ],
            70,
        ),
        (
            "b",
            "b. BAM's cost: latency, peak memory, attention share",
            py
            + [
                str(BENCH / "bam_cost.py"),
                "--models",
                "all",
                "--sizes",
                "160",
                "220",
                "--iters",
                "5",
                "--repeats",
                "3",
                "--device",
                "cuda",
            ],
            60,
        ),
        (
            "c",
            "c. Speed knobs vs eager fp32",
            py
            + [
                str(BENCH / "gpu_knobs.py"),
                "--models",
                "imdn",
                "pan",
                "--device",
                "cuda",
                "--steps",
                "20",
                "--repeats",
                "3",
                "--knobs",
                "eager fp32",
                "bf16-mixed",
                "channels_last",
                "compile",
                "cudnn benchmark",
            ],
            95,
        ),
        (
            "d",
            "d. Data path: device vs host placement",
            py
            + [
                str(BENCH / "data_path.py"),
                "--data",
                str(data),
                "--scales",
                "4",
                "--workers",
                "0",
                "4",
                "--batches",
                "50",
                "--repeats",
                "3",
                "--device",
                "cuda",
                "--cache-dir",
                str(work / "cache-d"),
            ],
            40,
        ),
        (
            "cuda",
            "CUDA-only tests: lagged finite-loss check, no sync per training step",
            py + ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "tests" / "test_cuda.py")],
            45,
        ),
    ]


def run_part(command: list[str], timeout: float, env: dict) -> tuple[str, str]:
    """(status, output) of one part."""
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        out = done.stdout if done.returncode == 0 else done.stdout + "\n" + done.stderr[-4000:]
    except subprocess.TimeoutExpired as stop:
        status, out = (
            f"timed out after {timeout:.0f} s",
            (stop.stdout or b"").decode(errors="replace") if isinstance(stop.stdout, bytes) else (stop.stdout or ""),
        )
    return f"{status}, {time.perf_counter() - start:.0f} s", out


def train_command(variant: str, seed: int, data: Path, logs: Path, steps: int, rehearse: bool) -> list[str]:
    sets = ["Set5"] if rehearse else ["Set5", "Set14", "B100"]
    # HR-only test sets: LR made from HR by the MATLAB-exact bicubic (the standard protocol's LR).
    tests = [
        f"data.test.sets=[{','.join(sets)}]",
        f"data.test.benchmark_dir={data / 'benchmark'}",
        "data.test.lr_dir=null",
    ]
    args = [
        "model=imdn",
        f"attention={variant}",
        "scale=2",
        f"seed={seed}",
        "experiment=t91",
        f"paths.log_dir={logs}",
        "task_name=device_check",
        *tests,
        "trainer.max_epochs=-1",
        f"+trainer.max_steps={steps}",
        "logger=csv",
        "callbacks.progress_bar=null",
        "+trainer.enable_progress_bar=false",
    ]
    if rehearse:
        return args + [
            "model.n_feats=16",
            "model.n_blocks=1",
            "data.patch_size=8",
            "data.batch_size=4",
            "data.repeat=1",
            "data.train.split=[0,4]",
            "data.val.split=[86,87]",
            "data.placement=device",
            "trainer.accelerator=cpu",
            "trainer.check_val_every_n_epoch=1",
            "+trainer.limit_val_batches=1",
        ]
    return args + ["trainer=gpu", "data.placement=device", "trainer.check_val_every_n_epoch=10"]


def verdict(rehearse: bool, data: Path, work: Path, steps: int, env: dict, timeout: float) -> tuple[str, str]:
    """Part e: six trainings at once, then report.py."""
    logs = work / "logs"
    start = time.perf_counter()
    procs, seeds = [], SEEDS[:1] if rehearse else SEEDS
    for variant in VARIANTS:
        for seed in seeds:
            log = work / f"train-{variant}-{seed}.log"
            with log.open("w") as out:
                procs.append(
                    (
                        variant,
                        seed,
                        log,
                        subprocess.Popen(
                            [
                                sys.executable,
                                str(REPO / "train.py"),
                                *train_command(variant, seed, data, logs, steps, rehearse),
                            ],
                            cwd=REPO,
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                        ),
                    )
                )
    failed = []
    for variant, seed, log, proc in procs:
        try:
            code = proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - start)))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "timeout"
        if code != 0:
            failed.append(f"{variant} seed {seed}: exit {code}\n{log.read_text()[-2000:]}")
    trained = time.perf_counter() - start
    report = work / "report"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "report.py"),
            str(logs),
            "--out",
            str(report),
            "--no-figures",
            "--no-complexity",
            "--bootstrap",
            "2000" if rehearse else "10000",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120 if rehearse else 40,
    )
    text = (report / "report.md").read_text() if (report / "report.md").is_file() else done.stdout + done.stderr[-3000:]
    head = (
        f"- {len(procs)} runs (IMDN x2 {' / '.join(VARIANTS)}, seeds {', '.join(map(str, seeds))}), {steps} steps each, "
        f"trained concurrently in {trained:.0f} s\n"
    )
    status = "ok" if not failed and done.returncode == 0 else "failed"
    return f"{status}, {time.perf_counter() - start:.0f} s", head + "\n".join(failed) + "\n" + text


def write(path: Path, sections: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(sections) + "\n")
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rehearse", action="store_true", help="every part at tiny sizes on the CPU")
    parser.add_argument("--data", default=os.environ.get("LIT_SISR_DATA", str(REPO / ".device" / "data")))
    parser.add_argument("--out", default=None, help="results file (default: device_check[_rehearsal].md under --work)")
    parser.add_argument("--work", default=None, help="scratch folder (runs, caches); default .device/work[-rehearsal]")
    parser.add_argument("--train-steps", type=int, default=None, help="part e steps per run (GPU 1500, rehearsal 2)")
    parser.add_argument(
        "--train-timeout", type=float, default=None, help="part e training seconds (GPU 170, rehearsal 150)"
    )
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c", "d", "cuda", "e"])
    args = parser.parse_args()

    import torch
    from common import load, machine

    if not args.rehearse and not torch.cuda.is_available():
        print("error: no CUDA device: run on a GPU machine, or pass --rehearse for the CPU rehearsal", file=sys.stderr)
        raise SystemExit(2)
    data = Path(args.data).resolve()
    for need in [data / "train" / "T91" / "HR"] + [data / "benchmark" / s / "HR" for s in ("Set5", "Set14", "B100")]:
        if not need.is_dir():
            print(
                f"error: {need} not found: --data must hold train/T91/HR and benchmark/<Set>/HR "
                "(benchmarks/device_bundle.sh copies them to .device/data)",
                file=sys.stderr,
            )
            raise SystemExit(2)
    suffix = "-rehearsal" if args.rehearse else ""
    work = Path(args.work or REPO / ".device" / f"work{suffix}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or work / f"device_check{suffix}.md")
    steps = args.train_steps or (2 if args.rehearse else 1500)
    env = {
        **os.environ,
        "LIT_SISR_DATA": str(data),
        "LIT_SISR_CACHE": str(work / "cache"),
        "WANDB_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
    }
    start = time.perf_counter()
    sections = [
        f"# Device check{' (CPU rehearsal: tiny sizes, the figures mean nothing)' if args.rehearse else ''}\n",
        f"- machine: {machine()}",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- start: {load()}",
        "",
    ]
    write(out, sections)
    failed = []
    for key, title, command, timeout in parts(args.rehearse, data, work, steps):
        if key not in args.parts:
            continue
        status, text = run_part(command, timeout, env)
        sections += [
            f"## {title}\n",
            f"- status: {status}",
            f"- command: `{' '.join(Path(c).name if c == sys.executable else c for c in command)}`\n",
            text.replace("\n## ", "\n### "),
            "",
        ]
        write(out, sections)
        print(f"{key}: {status}", flush=True)
        failed += [key] if not status.startswith("ok") else []
    if "e" in args.parts:
        status, text = verdict(
            args.rehearse, data, work, steps, env, args.train_timeout or (150 if args.rehearse else 170)
        )
        sections += [
            "## e. First verdict: IMDN x2 (CCA) vs IMDN-BAM x2, T91, same steps\n",
            f"- status: {status}\n",
            text.replace("\n# ", "\n### ").replace("\n## ", "\n### "),
            "",
        ]
        print(f"e: {status}", flush=True)
        failed += ["e"] if not status.startswith("ok") else []
    sections += [
        f"- end: {load()}; total {time.perf_counter() - start:.0f} s"
        + (f"; parts that did not finish: {', '.join(failed)}" if failed else "")
    ]
    write(out, sections)
    print(f"results: {out}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
