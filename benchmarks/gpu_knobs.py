"""Speed knobs versus eager fp32, per network: bf16 mixed precision, channels_last,
``torch.compile`` of the network, cudnn benchmark (the config flags ``trainer.precision``,
``channels_last``, ``compile``, ``trainer.benchmark``).

Times one training step (forward, L1, backward, Adam) of each network on random batches, each
knob alone and all together, against eager fp32, interleaved per repeat; reports the median step
time and the speed-up. Meant for a GPU (``--device cuda``); on a CPU it runs as a smoke check with
small batches (bf16 autocast on CPU is emulated on most CPUs and is not expected to be faster;
cudnn benchmark has no CPU effect; compile pays its compilation in the warm-up steps).

    python benchmarks/gpu_knobs.py --device cuda --batch 16 --patch 64          # the GPU measurement
    python benchmarks/gpu_knobs.py                                              # CPU smoke (small, ~3 min)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bam_cost import build  # noqa: E402
from common import add_device_arg, add_threads_arg, footer, header, median, parse, sync, table  # noqa: E402

KNOBS = ["eager fp32", "bf16-mixed", "channels_last", "compile", "cudnn benchmark", "all"]


def make_step(name: str, scale: int, knob: str, device: torch.device, init: dict):
    net = build(name, scale, "bam").to(device).train()
    net.load_state_dict(init)
    cl = knob in ("channels_last", "all")
    if cl:
        net = net.to(memory_format=torch.channels_last)
    if knob in ("compile", "all"):
        net.compile()
    bf16 = knob in ("bf16-mixed", "all")
    bench = knob in ("cudnn benchmark", "all")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step(lr: torch.Tensor, hr: torch.Tensor) -> None:
        torch.backends.cudnn.benchmark = bench
        if cl:
            lr = lr.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.l1_loss(net(lr).float(), hr)
        loss.backward()
        optimizer.step()
        if not torch.isfinite(loss):
            raise RuntimeError(f"{name} {knob}: non-finite loss")

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="default imdn carn pan on GPU, imdn on CPU")
    parser.add_argument("--scale", type=int, default=4)
    add_device_arg(parser)
    parser.add_argument("--batch", type=int, default=None, help="default 16 on GPU, 2 on CPU")
    parser.add_argument("--patch", type=int, default=None, help="LR patch; default 64 on GPU, 24 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per repeat (GPU 20, CPU 2)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--knobs",
        nargs="+",
        default=None,
        choices=KNOBS,
        help="default all on GPU; on CPU all but 'all' (one compilation, not two)",
    )
    add_threads_arg(parser)
    args = parse(parser)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch, patch = args.batch or (16 if gpu else 2), args.patch or (64 if gpu else 24)
    steps = args.steps or (20 if gpu else 2)
    args.models = args.models or (["imdn", "carn", "pan"] if gpu else ["imdn"])
    args.knobs = args.knobs or (KNOBS if gpu else KNOBS[:-1])
    header(f"Speed knobs vs eager fp32 ({device.type}), x{args.scale}, batch {batch}, LR patch {patch}")
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        init = build(name, args.scale, "bam").state_dict()
        lr = torch.rand(batch, 3, patch, patch, device=device)
        hr = torch.rand(batch, 3, patch * args.scale, patch * args.scale, device=device)
        runs = {k: make_step(name, args.scale, k, device, init) for k in args.knobs}
        for step in runs.values():
            for _ in range(args.warmup):
                step(lr, hr)
        times = {k: [] for k in runs}
        for _ in range(args.repeats):
            for knob, step in runs.items():
                sync(lr.device)
                start = time.perf_counter()
                for _ in range(steps):
                    step(lr, hr)
                sync(lr.device)
                times[knob].append((time.perf_counter() - start) / steps)
        base = median(times[args.knobs[0]])
        for knob in runs:
            ms = 1000 * median(times[knob])
            rows.append((name, knob, f"{ms:.1f}", f"{base * 1000 / ms:.2f}x"))
    torch.backends.cudnn.benchmark = False
    print()
    print(table(["network", "knob", "ms/step (median)", f"speed-up vs {args.knobs[0]}"], rows))
    print()
    footer()


if __name__ == "__main__":
    main()
