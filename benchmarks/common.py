"""Shared helpers for the benchmark scripts: machine description, interleaved repeats, tables.

Every script compares its variants side by side in one run: each repeat times every variant
once, in turn (interleaved), and the table reports the median over repeats, so a change in
machine load hits all variants alike. The load average is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Callable, Sequence

import torch


def machine() -> str:
    import numpy
    import pytorch_lightning

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {device}; Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), pytorch-lightning {pytorch_lightning.__version__}, numpy {numpy.__version__}"
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} cores"


def header(title: str) -> None:
    print(f"## {title}\n")
    print(f"- machine: {machine()}")
    print(f"- command: `python {' '.join(sys.argv)}`")
    print(f"- before: {load()}")


def footer() -> None:
    print(f"- after: {load()}\n")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on CPU, whose ops are synchronous."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(variants: dict[str, Callable[[], float | None]], repeats: int) -> dict[str, list[float]]:
    """Run each variant once per repeat, in turn; a variant returns its figure (or None: use its
    wall time in seconds). Returns all figures per variant."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            value = run()
            results[name].append(time.perf_counter() - start if value is None else value)
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """min-max of the repeats, for the reader to judge the noise."""
    return f"{min(values):.3g}-{max(values):.3g}"


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (0: torch's default; 1 is steadier on a busy machine)",
    )


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line and apply ``--threads``."""
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args
