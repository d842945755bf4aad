"""Training-data throughput: paired patches per second, device vs host placement.

Variants, each at x2 and x4 with 64x64 LR patches, flips and rotations, batch 16, over B100
(HR + the shared MATLAB-bicubic LR files; 100 pairs; without LR files, LR is made from HR by the
MATLAB-exact bicubic and ``naive`` is skipped), in the EpochSampler order:

- ``naive``: decodes the PNG pair on every sample, item by item (the baseline);
- ``host``: ``data.placement=host``, what :class:`SRDataModule` uses then: the memory-mapped decoded
  cache, whole uint8 batches cut by :class:`TrainPatches` (``dataset[keys]``) in a DataLoader with
  ``batch_size=None`` and 0 or 2 workers (torch's own transport); on CUDA each batch is also copied
  to the device (as Lightning does) and the clock waits for it;
- ``device``: ``data.placement=device``: the decoded images copied once to ``--device`` and every
  batch cut there (:class:`lit_sisr.data.placement.DevicePatches`; no workers). Timed over a whole
  epoch, so its one-off host work per epoch (drawing every item's crop and flips, one copy of the
  draws) is included.

Each repeat builds a fresh loader per variant, skips ``--warmup`` batches and times ``--batches``
batches (``device``: a whole epoch after a warm-up epoch); variants are interleaved and the median
of ``--repeats`` is reported. On CPU ``device`` means the CPU itself (the same code the GPU runs).

    python benchmarks/data_path.py [--data /work/shared/data] [--repeats 3] [--batches 30] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_device_arg, add_threads_arg, footer, header, interleaved, median, parse, spread, sync, table  # noqa: E402

from lit_sisr.data.datasets import ImageSet, TrainPatches, augment  # noqa: E402
from lit_sisr.data.io import read_image, to_float  # noqa: E402
from lit_sisr.data.placement import DevicePatches  # noqa: E402
from lit_sisr.data.samplers import EpochBatchSampler, EpochSampler, ResumableLoader  # noqa: E402


class NaivePairs(Dataset):
    """Decode HR and LR PNGs for every sample, then crop and augment as TrainPatches does."""

    def __init__(self, images: ImageSet, scale: int, patch_size: int, repeat: int) -> None:
        hr_files = images.files()
        self.files = [(hr, Path(images.lr_dir) / f"{hr.stem}x{scale}{hr.suffix}") for hr in hr_files]
        self.scale, self.patch_size, self.repeat = scale, patch_size, repeat

    def __len__(self) -> int:
        return len(self.files) * self.repeat

    def __getitem__(self, item):
        index, epoch = item
        hr_path, lr_path = self.files[index % len(self.files)]
        hr, lr = read_image(hr_path), read_image(lr_path)
        g = torch.Generator().manual_seed(hash((0, epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)
        p, s = self.patch_size, self.scale
        y = int(torch.randint(0, lr.shape[-2] - p + 1, (1,), generator=g))
        x = int(torch.randint(0, lr.shape[-1] - p + 1, (1,), generator=g))
        lr, hr = augment(lr[:, y : y + p, x : x + p], hr[:, y * s : (y + p) * s, x * s : (x + p) * s], g)
        return to_float(lr), to_float(hr)


def sampler_of(data: Dataset) -> EpochSampler:
    return EpochSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)


def naive(data: NaivePairs, workers: int, batches: int, warmup: int, batch_size: int) -> float:
    loader = DataLoader(
        data,
        batch_size=batch_size,
        sampler=sampler_of(data),
        num_workers=workers,
        prefetch_factor=2 if workers else None,
    )
    return _timed(iter(loader), batches, warmup, batch_size, None)


def host(data: TrainPatches, workers: int, batches: int, warmup: int, batch_size: int, device: torch.device) -> float:
    loader = ResumableLoader(
        data,
        batch_size=None,
        sampler=EpochBatchSampler(sampler_of(data), batch_size),
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    return _timed(iter(loader), batches, warmup, batch_size, device if device.type == "cuda" else None)


def _timed(it, batches: int, warmup: int, batch_size: int, device: torch.device | None) -> float:
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        if device is not None:  # what Lightning does with a host batch
            batch = [t.to(device, non_blocking=True) for t in batch]
    if device is not None:
        sync(device)
    elapsed = time.perf_counter() - start
    del it  # stops the workers
    return batches * batch_size / elapsed


def on_device(loader: DevicePatches, warmup: int) -> float:
    for _, batch in zip(range(warmup), loader):
        pass
    sync(loader.device)
    start = time.perf_counter()
    pairs = sum(lr.shape[0] for lr, _ in loader)
    sync(loader.device)
    return pairs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("LIT_SISR_DATA", "/work/shared/data"))
    parser.add_argument("--set", default="B100", help="benchmark set with HR and LR_bicubic folders")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="host and naive loaders")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeat-set", type=int, default=20, help="TrainPatches repeat (epoch length)")
    parser.add_argument("--cache-dir", default=None, help="decoded cache (default: a temporary folder)")
    parser.add_argument(
        "--variants", nargs="+", default=["naive", "host", "device"], choices=["naive", "host", "device"]
    )
    add_device_arg(parser)
    add_threads_arg(parser)
    args = parse(parser)

    header(f"Data path: paired patches per second, device ({args.device}) vs host placement")
    root = Path(args.data) / "benchmark" / args.set
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix="lit_sisr_bench_cache_"))
    try:
        print(
            table(["scale", "workers", "loader", "pairs/s (median)", "range", "vs naive"], run(args, root, cache_dir))
        )
    finally:
        if not args.cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)
    print()
    footer()


def run(args: argparse.Namespace, root: Path, cache_dir: Path) -> list[tuple]:
    rows, device = [], torch.device(args.device)
    for scale in args.scales:
        lr_dir = root / "LR_bicubic" / f"X{scale}"
        if not lr_dir.is_dir():  # HR only (e.g. the device check's data): LR by the MATLAB bicubic, no naive loader
            print(f"- x{scale}: no {lr_dir}: LR made from HR by the MATLAB-exact bicubic; the naive loader is skipped")
            lr_dir = None
        images = ImageSet(args.set, str(root / "HR"), str(lr_dir) if lr_dir else None)
        start = time.perf_counter()
        levels = TrainPatches(images, scale, args.patch, repeat=args.repeat_set, cache_dir=cache_dir, dtype="uint8")
        built = time.perf_counter() - start
        start = time.perf_counter()
        placed = DevicePatches(levels, sampler_of(levels), args.batch, device)
        sync(device)
        print(
            f"- x{scale}: decoded cache {cache_dir} opened in {built:.2f} s (builds unless present); "
            f"{placed.nbytes / 2**20:.0f} MiB copied to {device} in {time.perf_counter() - start:.2f} s"
        )
        pairs = NaivePairs(images, scale, args.patch, args.repeat_set) if lr_dir else None
        for workers in args.workers:
            runs = {
                "naive": lambda: naive(pairs, workers, args.batches, args.warmup, args.batch),
                "host": lambda: host(levels, workers, args.batches, args.warmup, args.batch, device),
            }
            runs = {k: v for k, v in runs.items() if k in args.variants and (k != "naive" or lr_dir)}
            if workers == args.workers[0] and "device" in args.variants:  # no workers: once per scale
                runs["device"] = lambda: on_device(placed, args.warmup)
            results = interleaved(runs, args.repeats)
            base = median(results["naive"]) if "naive" in results else None
            for name, values in results.items():
                ratio = f"{median(values) / base:.1f}x" if base else "-"
                rows.append(
                    (
                        f"x{scale}",
                        "-" if name == "device" else workers,
                        name,
                        f"{median(values):.0f}",
                        spread(values),
                        ratio,
                    )
                )
    print()
    return rows


if __name__ == "__main__":
    main()
