"""Training-data throughput: paired patches per second through a DataLoader.

Variants, each at x2 and x4 with 64x64 LR patches, flips and rotations, batch 16, and 0 and 2
workers, over B100 (HR + the shared MATLAB-bicubic LR files; 100 pairs):

- ``naive``: decodes the PNG pair on every sample (the baseline the goal is stated against);
- ``memory``: :class:`TrainPatches` with decoded pairs in process memory, one item at a time;
- ``mmap``: the same over the memory-mapped decoded cache (``cache_dir``), one item at a time;
- ``mmap+batch``: the cache, and whole float batches from ``TrainPatches.__getitems__`` with
  ``collate_patches``;
- ``mmap+batch+u8``: the same with ``dtype="uint8"`` (the batch crosses processes as uint8
  levels and the model divides by 255 on its device), sent by torch's own worker transport (a
  new shared-memory segment and a file-descriptor hand-over per tensor);
- ``mmap+batch+u8+slots``: the same through reusable shared-memory batch slots
  (:mod:`lit_sisr.data.batch_slots`): **what :class:`SRDataModule` uses** (with 0 workers the
  slots are not used and this equals ``mmap+batch+u8``);
- ``mmap+batch+u8+slots+cvt``: the same, with the float conversion done by the consuming
  process after each batch (the cost a CPU training loop pays for it).

Each repeat builds a fresh loader per variant, skips ``--warmup`` batches (worker start-up) and
times ``--batches`` batches; variants are interleaved and the median of ``--repeats`` is reported.

    python benchmarks/data_path.py [--data /work/shared/data] [--repeats 3] [--batches 30]
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
from common import add_threads_arg, footer, header, interleaved, median, parse, spread, table  # noqa: E402

from lit_sisr.data.batch_slots import BatchSlots  # noqa: E402
from lit_sisr.data.datamodule import _HELD_BY_CONSUMER, _PREFETCH  # noqa: E402
from lit_sisr.data.datasets import ImageSet, TrainPatches, augment, collate_patches  # noqa: E402
from lit_sisr.data.io import read_image, to_float  # noqa: E402
from lit_sisr.data.samplers import EpochSampler  # noqa: E402


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
        lr, hr = augment(lr[:, y:y + p, x:x + p], hr[:, y * s:(y + p) * s, x * s:(x + p) * s], g)
        return to_float(lr), to_float(hr)


class PerItem(Dataset):
    """Hides ``__getitems__``: the DataLoader fetches and collates item by item."""

    def __init__(self, data: Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, item):
        return self.data[item]


def throughput(data: Dataset, workers: int, batches: int, warmup: int, batch_size: int, batched: bool,
               convert: bool = False, slots: bool = False) -> float:
    sampler = EpochSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
    collate = collate_patches if batched else None
    if isinstance(data, TrainPatches):  # slots as SRDataModule sets them for its training loader
        data.batch_slots = None
        if slots and workers:
            data.batch_slots = BatchSlots(workers * _PREFETCH + _HELD_BY_CONSUMER, data.batch_nbytes(batch_size))
    loader = DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
                        prefetch_factor=_PREFETCH if workers else None)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        if convert:
            batch = [t.float().div_(255) for t in batch]
    elapsed = time.perf_counter() - start
    del it  # stops the workers
    return batches * batch_size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("LIT_SISR_DATA", "/work/shared/data"))
    parser.add_argument("--set", default="B100", help="benchmark set with HR and LR_bicubic folders")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeat-set", type=int, default=20, help="TrainPatches repeat (epoch length)")
    parser.add_argument("--cache-dir", default=None, help="decoded cache (default: a temporary folder)")
    parser.add_argument("--variants", nargs="+", default=["naive", "memory", "mmap", "mmap+batch", "mmap+batch+u8",
                                                          "mmap+batch+u8+slots", "mmap+batch+u8+slots+cvt"])
    add_threads_arg(parser)
    args = parse(parser)

    header("Data path: paired patches per second")
    root = Path(args.data) / "benchmark" / args.set
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix="lit_sisr_bench_cache_"))
    try:
        run(args, root, cache_dir)
    finally:
        if not args.cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)


def run(args: argparse.Namespace, root: Path, cache_dir: Path) -> None:
    rows = []
    for scale in args.scales:
        images = ImageSet(args.set, str(root / "HR"), str(root / "LR_bicubic" / f"X{scale}"))
        start = time.perf_counter()
        cached = TrainPatches(images, scale, args.patch, repeat=args.repeat_set, cache_dir=cache_dir)
        built = time.perf_counter() - start
        start = time.perf_counter()
        cached = TrainPatches(images, scale, args.patch, repeat=args.repeat_set, cache_dir=cache_dir)
        reused = time.perf_counter() - start
        print(f"- x{scale}: decoded cache {cache_dir}: first open {built:.2f} s (builds unless present), "
              f"reopen {reused:.2f} s")
        levels = TrainPatches(images, scale, args.patch, repeat=args.repeat_set, cache_dir=cache_dir, dtype="uint8")
        datasets = {  # name: (dataset, whole batches, convert to float in the consumer, batch slots)
            "naive": (NaivePairs(images, scale, args.patch, args.repeat_set), False, False, False),
            "memory": (PerItem(TrainPatches(images, scale, args.patch, repeat=args.repeat_set)), False, False, False),
            "mmap": (PerItem(cached), False, False, False),
            "mmap+batch": (cached, True, False, False),
            "mmap+batch+u8": (levels, True, False, False),
            "mmap+batch+u8+slots": (levels, True, False, True),
            "mmap+batch+u8+slots+cvt": (levels, True, True, True),
        }
        for workers in args.workers:
            runs = {name: (lambda d=d, b=b, c=c, s=s: throughput(d, workers, args.batches, args.warmup, args.batch,
                                                                 b, c, s))
                    for name, (d, b, c, s) in datasets.items() if name in args.variants}
            results = interleaved(runs, args.repeats)
            base = median(results["naive"]) if "naive" in results else None
            for name, values in results.items():
                ratio = f"{median(values) / base:.1f}x" if base else "-"
                rows.append((f"x{scale}", workers, name, f"{median(values):.0f}", spread(values), ratio))
    print()
    print(table(["scale", "workers", "loader", "pairs/s (median)", "range", "vs naive"], rows))
    print()
    footer()


if __name__ == "__main__":
    main()
