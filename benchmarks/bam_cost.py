"""BAM's real cost: inference latency and peak memory of each network with its original attention
versus BAM, and the attention modules' own share of the time.

The BAM paper's FPS claim (calc_FPS.py, bam_reference.md section 4) times random square LR inputs
of 160-220 px on CUDA. Here: the same inputs, batch 1, ``torch.inference_mode``, on the CPU (or
the GPU with ``--device cuda``). Per network and size, each repeat times both variants in turn
(interleaved, the order alternating between repeats); latency is the median over repeats of the
mean of ``--iters`` forwards after one warm-up forward. The attention share comes from a separate
pass with timing hooks on every attention module (CPU ops are synchronous, so the hook clock is
the module's own time; on CUDA the hooks synchronise). Peak memory is the high-water mark of the
tensors the forward allocates (``torch.profiler`` memory events on CPU,
``torch.cuda.max_memory_allocated`` on CUDA), weights excluded.

    python benchmarks/bam_cost.py                         # light networks, 160 px, x4 (~2-3 min on 2 cores)
    python benchmarks/bam_cost.py --models all --sizes 160 180 200 220   # every network (long on a CPU)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_device_arg, add_threads_arg, footer, header, median, parse, sync, table  # noqa: E402

from lit_sisr.attention import ATTENTION, AttentionFactory  # noqa: E402
from lit_sisr.backbones import build_backbone, count_parameters  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ALL = ["awsrn", "carn", "carn_m", "drln", "edsr", "imdn", "msrn", "oisr_lf", "oisr_lf_s", "pan", "rcan", "slwsr32"]
# Under about 100 GFLOPs per 160 px LR input: the default set, for a run of minutes on a CPU.
LIGHT = ["imdn", "pan", "carn_m", "carn", "awsrn", "slwsr32"]


def build(name: str, scale: int, attention: str) -> torch.nn.Module:
    spec = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / f"{name}.yaml"), resolve=False)
    options = {k: v for k, v in spec.items() if k not in ("_target_", "name", "scale", "attention")}
    return build_backbone(name, scale, AttentionFactory(attention), **options).eval()


def attention_modules(net: torch.nn.Module) -> list[torch.nn.Module]:
    classes = tuple(ATTENTION.get(n) for n in ATTENTION.names() if n != "none")
    return [m for m in net.modules() if isinstance(m, classes)]


def latency(net: torch.nn.Module, x: torch.Tensor, iters: int) -> float:
    """Mean seconds per forward over ``iters`` forwards, after one warm-up."""
    with torch.inference_mode():
        net(x)
        sync(x.device)
        start = time.perf_counter()
        for _ in range(iters):
            net(x)
        sync(x.device)
    return (time.perf_counter() - start) / iters


def attention_share(net: torch.nn.Module, x: torch.Tensor) -> float:
    """Fraction of one forward spent inside attention modules (timing hooks)."""
    spent, starts = [0.0], {}

    def before(module, _):
        sync(x.device)
        starts[id(module)] = time.perf_counter()

    def after(module, _, __):
        sync(x.device)
        spent[0] += time.perf_counter() - starts[id(module)]

    handles = [
        h for m in attention_modules(net) for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))
    ]
    try:
        with torch.inference_mode():
            net(x)
            spent[0] = 0.0
            sync(x.device)
            start = time.perf_counter()
            net(x)
            sync(x.device)
            total = time.perf_counter() - start
    finally:
        for h in handles:
            h.remove()
    return spent[0] / total


def peak_memory(net: torch.nn.Module, x: torch.Tensor) -> int:
    """Peak bytes allocated by one forward (activations, not weights)."""
    with torch.inference_mode():
        if x.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            net(x)
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - base
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            net(x)
    # Leaf events only (allocations inside aten::empty & co, frees as [memory]): a parent op's
    # figure repeats its children's.
    events = sorted(
        (e for e in prof.events() if e.cpu_memory_usage and not e.cpu_children), key=lambda e: e.time_range.start
    )
    live = peak = 0
    for e in events:
        live += e.cpu_memory_usage
        peak = max(peak, live)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=LIGHT, help="network names, or 'all'")
    parser.add_argument("--sizes", type=int, nargs="+", default=[160], help="square LR input sizes (paper: 160-220)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    add_device_arg(parser)
    add_threads_arg(parser)
    args = parse(parser)
    models = ALL if args.models == ["all"] else args.models
    device = torch.device(args.device)

    header(f"BAM's cost: original attention vs BAM, x{args.scale}, batch 1, {device.type}")
    rows = []
    for name in models:
        nets = {v: build(name, args.scale, v).to(device) for v in ("original", "bam")}
        for size in args.sizes:
            torch.manual_seed(0)
            x = torch.rand(1, 3, size, size, device=device)
            times = {v: [] for v in nets}
            for repeat in range(args.repeats):
                # Alternate which variant goes first: the second of a pair may run on memory the
                # first has just released (fewer page faults), which would bias a fixed order.
                order = list(nets) if repeat % 2 == 0 else list(reversed(nets))
                for variant in order:
                    times[variant].append(latency(nets[variant], x, args.iters))
            for variant, net in nets.items():
                sites = len(attention_modules(net))
                share = attention_share(net, x) if sites else 0.0
                ms = 1000 * median(times[variant])
                rel = ms / (1000 * median(times["original"]))
                rows.append(
                    (
                        name,
                        size,
                        variant,
                        f"{count_parameters(net):,}",
                        sites,
                        f"{ms:.0f}",
                        f"{1000 / ms:.2f}",
                        f"{rel:.3f}",
                        f"{100 * share:.1f}%",
                        f"{peak_memory(net, x) / 2**20:.0f}",
                    )
                )
                print("| " + " | ".join(map(str, rows[-1])) + " |", file=sys.stderr, flush=True)  # progress
        del nets
    print()
    print(
        table(
            [
                "network",
                "LR px",
                "attention",
                "params",
                "sites",
                "latency ms (median)",
                "FPS",
                "vs original",
                "attention share",
                "peak MiB",
            ],
            rows,
        )
    )
    print()
    footer()


if __name__ == "__main__":
    main()
