"""Evaluation wall time of IMDN x4 on Set5 + Set14 + B100, split into decode, model and metric time.

The loop is :func:`lit_sisr.scoring.evaluate_set`'s (standard protocol: stored LR
files, SR rounded to 8 bits, MATLAB Y, shave, Gaussian SSIM), with a clock around each part:
``decode`` (PNG pair to float tensors), ``model`` (the forward under ``no_grad``) and ``metric``
(PSNR and SSIM of the image). The per-image figures leave the device once, at the end (one
transfer for the whole set, as in ``LitSR.test_step``'s one per batch). Weights: the authors'
``IMDN_x4.pth`` when present (the printed PSNR then checks the run), else random.

With default arguments only the first ``--limit`` images of each set are timed, so that the run
takes a few minutes on two CPU cores; ``--limit 0`` evaluates the whole sets.

A second table times the SSIM alone on the same images' prepared Y, interleaved: the project's
separable float64 filter (:func:`lit_sisr.metrics.ssim_of_y`) against ``kornia.metrics.ssim``
(2-D float64 convolution), with the largest difference between the two figures.

    python benchmarks/evaluation.py [--limit 5] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bam_cost import build  # noqa: E402
from common import add_device_arg, add_threads_arg, footer, header, interleaved, median, parse, sync, table  # noqa: E402

from lit_sisr.data.datasets import lr_file  # noqa: E402
from lit_sisr.data.io import read_image, to_float  # noqa: E402
from lit_sisr.data.testsets import named_sets  # noqa: E402
from lit_sisr.metrics import prepare_y, ssim_of_y  # noqa: E402
from lit_sisr.protocols import get_protocol  # noqa: E402
from lit_sisr.weights import load_official_weights  # noqa: E402


def evaluate(net, pairs, scale: int, device: torch.device) -> tuple[dict[str, float], float]:
    """Seconds spent per part over all pairs, and the mean PSNR."""
    protocol = get_protocol("standard")
    spent = {"decode": 0.0, "model": 0.0, "metric": 0.0}
    psnrs = []
    with torch.no_grad():
        for _, hr_path, lr_path in pairs:
            t0 = time.perf_counter()
            lr, hr = protocol.make_pair(read_image(lr_path), read_image(hr_path), scale)
            lr, hr = to_float(lr)[None].to(device), to_float(hr)[None].to(device)
            sync(device)
            t1 = time.perf_counter()
            sr = net(lr)
            sync(device)
            t2 = time.perf_counter()
            psnr, _ = protocol.score(sr, hr, scale)
            psnrs.append(psnr)
            sync(device)
            t3 = time.perf_counter()
            spent["decode"] += t1 - t0
            spent["model"] += t2 - t1
            spent["metric"] += t3 - t2
    mean = float(torch.cat(psnrs).mean())  # the one device-to-host transfer
    return spent, mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("LIT_SISR_DATA", "/work/shared/data"))
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14", "B100"])
    parser.add_argument("--limit", type=int, default=5, help="images per set (0: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=4)
    add_device_arg(parser)
    add_threads_arg(parser)
    args = parse(parser)
    device = torch.device(args.device)

    header(f"Evaluation: IMDN x{args.scale} on {' + '.join(args.sets)}, {device.type}")
    net = build("imdn", args.scale, "original")
    weights = Path(args.data).parent / "weights" / "IMDN" / f"IMDN_x{args.scale}.pth"
    if weights.is_file():
        load_official_weights(net, weights)
    print(f"- weights: {weights if weights.is_file() else 'random (authors file not found)'}")
    net = net.eval().to(device)
    pairs = []
    for s in args.sets:
        (images,) = named_sets([s], str(Path(args.data) / "benchmark"), args.scale)
        found = [(hr.stem, hr, lr_file(images.lr_dir, hr, args.scale)) for hr in images.files()]
        pairs += found[: args.limit] if args.limit else found
    runs = [evaluate(net, pairs, args.scale, device) for _ in range(args.repeats)]
    parts = {k: median([r[0][k] for r in runs]) for k in ("decode", "model", "metric")}
    total = sum(parts.values())
    print(f"- {len(pairs)} images; mean PSNR {runs[0][1]:.3f} dB (standard protocol)")
    print()
    rows = [(k, f"{v:.2f}", f"{1000 * v / len(pairs):.0f}", f"{100 * v / total:.1f}%") for k, v in parts.items()]
    rows.append(("total", f"{total:.2f}", f"{1000 * total / len(pairs):.0f}", "100%"))
    print(table(["part", "seconds (median)", "ms per image", "share"], rows))
    print()
    compare_ssim(net, pairs, args.scale, device, args.repeats)
    print()
    footer()


def compare_ssim(net, pairs, scale: int, device: torch.device, repeats: int) -> None:
    import kornia

    protocol = get_protocol("standard")
    prepared = []
    with torch.no_grad():
        for _, hr_path, lr_path in pairs:
            lr, hr = protocol.make_pair(read_image(lr_path), read_image(hr_path), scale)
            prepared.append(prepare_y(net(to_float(lr)[None].to(device)), to_float(hr)[None].to(device), scale))

    def ours() -> list[float]:
        return [float(ssim_of_y(a, b)) for a, b in prepared]

    def reference() -> list[float]:
        return [float(kornia.metrics.ssim(a, b, 11, max_val=255.0, padding="valid").mean()) for a, b in prepared]

    # A variant returning None is timed by interleaved() itself.
    results = interleaved(
        {"ssim_of_y (separable)": lambda: ours() and None, "kornia.metrics.ssim": lambda: reference() and None}, repeats
    )
    gap = max(abs(a - b) for a, b in zip(ours(), reference()))
    rows = [(name, f"{1000 * median(v) / len(prepared):.1f}") for name, v in results.items()]
    print(table(["SSIM of prepared Y", "ms per image (median)"], rows))
    print(f"\n- largest per-image difference between the two: {gap:.1e}")


if __name__ == "__main__":
    main()
