"""Parameters and FLOPs of every network x attention x scale, next to the BAM paper's Table 2.

Run ``python -m lit_sisr.models_table`` (``--help`` for the options). Every registered backbone
except ``bicubic`` is built on the ``meta`` device (shapes only, no weights allocated), its
parameters are counted with :func:`lit_sisr.backbones.count_parameters` and its FLOPs with
:class:`torch.utils.flop_counter.FlopCounterMode` on a 1x3x240x360 **LR** input, the input the
paper's numbers were measured on (docs/protocol.md: the output is then
480x720 at x2, 720x1080 at x3, 960x1440 at x4). The paper's printed params/GFLOPs come from
:mod:`lit_sisr.paper` (our copy of its Table 2 and Table 3), with a note on its known errors.

Counting convention (docs/protocol.md). ``torch.utils.flop_counter`` counts
**2 FLOPs per multiply-add** of convolutions and matrix products, every time a module runs, and
nothing else: bias adds, activations, pooling, pixel shuffle, additions and the elementwise
products of attention are free. The paper's GFLOPs come from a thop-0.0.2x-style hook counter
(``FLOPs/profile.py`` from IMDN's repo) that counts about **1 per multiply-add**, plus ``Cin``
per output element for a conv bias (a quirk: a bias costs as much as a 1x1 conv), plus
activations (``numel``), sigmoid (3 x ``numel``), pooling and pixel shuffle; it ignores
functional ops and custom modules, and counts a module that is **called several times only once**
(its hook assigns rather than adds). So our figure is 2 x MACs exactly, while the paper's is
MACs + the bias term + a little: the ratio ours/paper is not 2 but about 1.6-1.9 depending on
how many biased convs with many input channels a network has (IMDN x2: 2 x 59.537 = 119.07 G vs
the paper's 70.000 = 59.537 conv MACs + 10.390 bias quirk + 0.07 activations/pixel shuffle), and
2.3-2.7 for CARN-M, whose residual unit, re-used three times per block, the paper counts once.
The two columns measure different things; compare networks within one column only. (The paper's
OISR-LF-s x4 row is a 16-block model; ``--paper-config`` builds that one instead of our 8 blocks.)

The columns ``params_k``/``paper_params_k`` compare directly (the paper's counter differs from
``sum(p.numel())`` by at most 0.1K, see the notes). Networks that cannot run on meta tensors
(e.g. a forward pass that needs data values, like ``.item()``) are counted again on real CPU
tensors of the same size; the row's ``device`` says where it was counted.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lit_sisr.attention import AttentionFactory
from lit_sisr.backbones import BACKBONES, build_backbone, count_parameters, native_attention
from lit_sisr.paper import load_paper_table, paper_row

#: LR input (height, width) of the paper's params/GFLOPs columns.
LR_SIZE = (240, 360)
SCALES = (2, 3, 4)
ATTENTIONS = ("original", "bam")
COLUMNS = (
    "model",
    "attention",
    "scale",
    "params_k",
    "gflops",
    "paper_params_k",
    "paper_gflops",
    "ratio",
    "device",
    "note",
)
HEADERS = {
    "model": "model",
    "attention": "attention",
    "scale": "scale",
    "params_k": "params (K)",
    "gflops": "GFLOPs (ours)",
    "paper_params_k": "paper params (K)",
    "paper_gflops": "paper GFLOPs",
    "ratio": "ours/paper",
    "device": "device",
    "note": "note",
}


def ablation_attentions() -> list[str]:
    """The IMDN ablation modules of the paper's Table 3 beyond ``original`` (CCA) and ``bam``."""
    names = dict.fromkeys(row["attention"] for row in load_paper_table(3))
    return [name for name in names if name not in ATTENTIONS]


def default_models() -> list[str]:
    """Every registered network with attention sites (``bicubic`` has none: nothing to compare)."""
    return [name for name in BACKBONES.names() if native_attention(name)]


def paper_overrides(model: str, scale: int) -> dict[str, Any]:
    """Options that reproduce the paper's row, as the network declares (``paper_overrides``);
    the paper's x4 OISR-LF-s row is a 16-block model."""
    return dict(getattr(BACKBONES.get(model), "paper_overrides", {}).get(scale, {}))


def attention_factory(spec: str) -> AttentionFactory:
    """``bam`` (a registered name) or ``NAME=module.Class`` (a module outside the package)."""
    name, _, class_path = spec.partition("=")
    return AttentionFactory(name, class_path=class_path or None)


def count_flops(net: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of ``net(x)`` per ``torch.utils.flop_counter`` (2 per multiply-add, every call)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class Measurement:
    params: int
    flops: int
    device: str
    fallback_reason: str = ""


def measure(
    build: Callable[[], nn.Module],
    lr_size: tuple[int, int] = LR_SIZE,
    devices: Sequence[str] = ("meta", "cpu"),
) -> Measurement:
    """Count params and FLOPs of ``build()`` on a 1x3xHxW input, trying ``devices`` in order.

    ``meta`` first: the network is built and run with shapes only. Anything that fails there
    (an op without a meta kernel, ``.item()`` or other data-dependent control flow) is retried on
    the next device with real zero tensors of the same size, and the first failure is kept as
    ``fallback_reason``. The last device's error propagates.
    """
    first_error = ""
    for i, device in enumerate(devices):
        try:
            with torch.device(device):  # also for tensors the forward pass creates
                net = build().eval()
                flops = count_flops(net, torch.zeros(1, 3, *lr_size))
            return Measurement(count_parameters(net), flops, device, first_error)
        except Exception as error:  # noqa: BLE001 - any failure moves on to the next device
            if i == len(devices) - 1:
                raise
            if not first_error:
                first_error = f"{device}: {_first_line(error, 120)}"
    raise ValueError("no device to count on")


def _first_line(error: BaseException, width: int) -> str:
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0][:width] if lines else ''}"


def _ratio(ours: float | None, paper: float | None) -> float | None:
    return ours / paper if ours is not None and paper else None


def rows(
    models: Iterable[str] | None = None,
    attentions: Iterable[str] = ATTENTIONS,
    scales: Iterable[int] = SCALES,
    *,
    ablation: bool = False,
    paper_config: bool = False,
    lr_size: tuple[int, int] = LR_SIZE,
) -> list[dict[str, Any]]:
    """One dict per model x attention x scale (in that nesting order), with the paper's values.

    ``models`` defaults to every registered backbone except ``bicubic``; scales a network does not
    support are skipped. ``ablation`` adds the paper's Table 3 attention modules for ``imdn``.
    ``paper_config`` applies :func:`paper_overrides` (the 16-block OISR-LF-s x4). A network that
    fails on every device gives a row with ``gflops=None`` and the error in ``note``.

    Keys: see :data:`COLUMNS`, plus ``params`` (exact count), ``flops`` (exact count) and
    ``options`` (model options used, ``{}`` for the defaults).
    """
    models = list(models) if models is not None else default_models()
    attentions, scales = list(attentions), list(scales)
    out: list[dict[str, Any]] = []
    for model in models:
        cls = BACKBONES.get(model)
        model_attentions = list(attentions)
        if ablation and model == "imdn":
            model_attentions += [a for a in ablation_attentions() if a not in model_attentions]
        for attention in model_attentions:
            for scale in scales:
                if scale not in getattr(cls, "scales", SCALES):
                    continue
                options = paper_overrides(model, scale) if paper_config else {}
                out.append(_row(model, attention, scale, options, lr_size))
    return out


def _row(model: str, attention: str, scale: int, options: dict[str, Any], lr_size: tuple[int, int]) -> dict[str, Any]:
    factory = attention_factory(attention)

    def build() -> nn.Module:
        return build_backbone(model, scale, factory, **options)

    notes = []
    params = flops = None
    device = ""
    try:
        m = measure(build, lr_size)
        params, flops, device = m.params, m.flops, m.device
        if m.fallback_reason:
            notes.append(f"counted on {device} ({m.fallback_reason})")
    except Exception as error:  # noqa: BLE001 - one broken network must not hide the others
        notes.append(f"FAILED: {_first_line(error, 160)}")
    paper = paper_row(model, attention, scale) if tuple(lr_size) == LR_SIZE else None
    if paper:  # remarks on the paper's params/GFLOPs cells; PSNR/SSIM remarks don't belong here
        notes += [
            "paper row: " + part for part in paper["note"].split("; ") if part and not part.startswith("metrics:")
        ]
    flops_note = getattr(BACKBONES.get(model), "flops_note", "")
    if flops_note and flops is not None:
        notes.append(flops_note)
    gflops = flops / 1e9 if flops is not None else None
    paper_gflops = paper["gflops"] if paper else None
    return {
        "model": model,
        "attention": factory.name,
        "scale": scale,
        "options": options,
        "params": params,
        "flops": flops,
        "params_k": params / 1e3 if params is not None else None,
        "gflops": gflops,
        "paper_params_k": paper["params_k"] if paper else None,
        "paper_gflops": paper_gflops,
        "ratio": _ratio(gflops, paper_gflops),
        "device": device,
        "note": "; ".join(notes),
    }


_FORMATS = {
    "params_k": "{:.1f}",
    "gflops": "{:.3f}",
    "paper_params_k": "{:.1f}",
    "paper_gflops": "{:.3f}",
    "ratio": "{:.2f}",
}


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if key == "model" and row.get("options"):
        return value + "[" + ",".join(f"{k}={v}" for k, v in row["options"].items()) + "]"
    if key in ("paper_params_k", "paper_gflops") and len(str(value).split(".")[-1]) > (
        1 if key == "paper_params_k" else 3
    ):
        return str(value)  # as printed, with more digits (DRLN x3 34614.84K, OISR-LF x4 GFLOPs)
    fmt = _FORMATS.get(key)
    return fmt.format(value) if fmt else str(value)


def format_table(
    table_rows: Sequence[dict[str, Any]],
    *,
    markdown: bool = False,
    columns: Sequence[str] = COLUMNS,
) -> str:
    """Render rows as an aligned text table, or a Markdown table with ``markdown=True``."""
    header = [HEADERS.get(c, c) for c in columns]
    body = [[_cell(r, c) for c in columns] for r in table_rows]
    numeric = {c for c in columns if c in _FORMATS or c == "scale"}
    if markdown:
        align = ["---:" if c in numeric else "---" for c in columns]
        lines = [header, align, *body]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    widths = [max(len(x) for x in col) for col in zip(header, *body)]

    def line(cells: Sequence[str]) -> str:
        parts = [cell.rjust(w) if c in numeric else cell.ljust(w) for c, cell, w in zip(columns, cells, widths)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(cells) for cells in body)])


def write_csv(table_rows: Sequence[dict[str, Any]], path: str) -> None:
    """Full-precision CSV: exact ``params``/``flops`` counts plus every table column."""
    keys = ["model", "attention", "scale", "options", "params", "flops", *COLUMNS[3:]]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in table_rows:
            writer.writerow(
                {
                    **{k: "" if r.get(k) is None else r[k] for k in keys},
                    "options": " ".join(f"{k}={v}" for k, v in r["options"].items()),
                }
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lit_sisr.models_table",
        description="Params and FLOPs (torch.utils.flop_counter, 2 per multiply-add) of every "
        "network on a 1x3x240x360 LR input, next to the BAM paper's Table 2 "
        "(its GFLOPs use another convention: ~1 per multiply-add plus a bias quirk).",
    )
    parser.add_argument(
        "--models", nargs="+", metavar="NAME", help="registry names (default: every network with attention sites)"
    )
    parser.add_argument(
        "--attention",
        nargs="+",
        default=list(ATTENTIONS),
        metavar="NAME",
        help="attention names, or NAME=module.Class for your own (default: original bam)",
    )
    parser.add_argument("--scales", nargs="+", type=int, default=list(SCALES), metavar="S")
    parser.add_argument(
        "--ablation", action="store_true", help="add IMDN with the paper's Table 3 ablation attention modules"
    )
    parser.add_argument(
        "--paper-config", action="store_true", help="build OISR-LF-s x4 with 16 blocks, as in the paper's row"
    )
    parser.add_argument(
        "--lr-size",
        nargs=2,
        type=int,
        default=list(LR_SIZE),
        metavar=("H", "W"),
        help="LR input size (paper values are shown only for 240 360)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--csv", metavar="PATH", help="also write the rows to a CSV file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # unknown names fail before any counting, listing the valid ones
        for name in args.models or []:
            BACKBONES.get(name)
        for spec in args.attention:
            attention_factory(spec)
    except (KeyError, ValueError) as error:
        parser.error(error.args[0])
    table_rows = rows(
        args.models,
        args.attention,
        args.scales,
        ablation=args.ablation,
        paper_config=args.paper_config,
        lr_size=tuple(args.lr_size),
    )
    print(format_table(table_rows, markdown=args.markdown))
    if args.csv:
        write_csv(table_rows, args.csv)
    return 1 if any(r["flops"] is None for r in table_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
