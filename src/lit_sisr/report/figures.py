"""Figures: the paper's Fig. 7 (PSNR gain of BAM per network, grouped by scale, one panel per
test set) and Fig. 5-style visual comparisons of one crop (HR, bicubic, original, BAM, each
with its PSNR on the crop). Written as PNG and PDF (matplotlib, Agg backend).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from lit_sisr.atomic import atomic_write_bytes
from lit_sisr.report.model import Report, Table
from lit_sisr.report.runs import Run
from lit_sisr.report.writers import level_text

SCALE_COLORS = {2: "#4C72B0", 3: "#DD8452", 4: "#55A868"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: str | Path, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``<stem>.<fmt>`` for each format, each written atomically."""
    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
        path = Path(f"{stem}.{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    _pyplot().close(fig)
    return paths


# --------------------------------------------------------------------------------------------
# Fig. 7


def fig7_groups(report: Report) -> dict[tuple[str, str], list[Table]]:
    """Table 2s with at least one BAM/original pair, by (protocol, training): one figure each."""
    groups: dict[tuple[str, str], list[Table]] = {}
    for t in report.tables:
        if t.kind == "table2" and t.pairs:
            groups.setdefault((t.protocol, t.training), []).append(t)
    return groups


def fig7(tables: Sequence[Table]):
    """Bars of the mean per-image PSNR gain (BAM − original) per network, one colour per scale,
    with the bootstrap interval (at the report's level) as error bars and the paper's printed gain as a black mark;
    one panel per test set. ``tables``: Table 2s of one protocol and training recipe."""
    plt = _pyplot()
    tables = sorted(tables, key=lambda t: t.scale)
    protocol, training = tables[0].protocol, tables[0].training
    level = next((c.level for t in tables for p in t.pairs for c in p.psnr.values() if c), 0.95)
    networks: list[str] = []
    sets: list[str] = []
    for t in tables:
        for p in t.pairs:
            if p.b.label not in networks:
                networks.append(p.b.label)
            sets += [s for s in t.sets if p.psnr.get(s) and s not in sets]
    scales = sorted({2, 3, 4} | {t.scale for t in tables})  # fixed slots, as in the paper's figure
    width = 0.8 / len(scales)
    fig, axes = plt.subplots(
        len(sets),
        1,
        figsize=(max(6.0, 0.75 * len(networks) + 2), 2.6 * len(sets)),
        squeeze=False,
    )
    for ax, s in zip(axes[:, 0], sets):
        for t in tables:
            k = scales.index(t.scale)
            x0 = np.arange(len(networks)) - 0.4 + width * (k + 0.5)
            for p in t.pairs:
                c = p.psnr.get(s)
                if not c:
                    continue
                x = x0[networks.index(p.b.label)]
                ax.bar(
                    x,
                    c.mean,
                    width,
                    color=SCALE_COLORS.get(t.scale, f"C{k}"),
                    hatch="" if c.verdict in ("helps", "hurts") else "//",
                    edgecolor="white",
                )
                ax.errorbar(
                    x,
                    c.mean,
                    yerr=[[c.mean - c.low], [c.high - c.mean]],
                    fmt="none",
                    ecolor="black",
                    elinewidth=0.8,
                    capsize=2,
                )
                paper = p.paper_psnr.get(s)
                if paper is not None:
                    ax.plot(x, paper, marker="D", markersize=3.5, color="black", linestyle="none")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlim(-0.5, len(networks) - 0.5)
        ax.set_xticks(np.arange(len(networks)))
        ax.set_xticklabels(networks, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("PSNR gain (dB)")
        ax.set_title(f"{s}", fontsize=9)
        ax.grid(axis="y", linewidth=0.3)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=SCALE_COLORS.get(t.scale, "grey"), label=f"x{t.scale}") for t in tables]
    handles += [
        Patch(facecolor="grey", hatch="//", edgecolor="white", label="within noise"),
        Line2D([], [], marker="D", markersize=3.5, color="black", linestyle="none", label="paper"),
    ]
    axes[0, 0].legend(handles=handles, fontsize=7, ncol=len(handles), loc="best")
    fig.suptitle(
        f"BAM − original, Y-PSNR (protocol {protocol}; {training})\n"
        f"bars: mean per-image gain; whiskers: {level_text(level)} bootstrap interval; hatched: within noise; ◆ paper",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Fig. 5: a crop


@dataclass(frozen=True)
class Crop:
    set: str
    image: str
    x: int
    y: int
    w: int
    h: int

    @property
    def name(self) -> str:
        return f"{self.set}_{self.image}_{self.x}-{self.y}-{self.w}x{self.h}"


def find_image(crop: Crop, scale: int, benchmark_dir: str | Path | None, run: Run | None = None):
    """(HR path, LR folder or None) of ``crop``'s image: the benchmark folder in the EDSR layout
    first, then the test sets named in the run's config (an LR folder of None means LR is made
    from HR with the MATLAB bicubic, as the run's test did)."""
    from lit_sisr.data.io import IMAGE_SUFFIXES

    candidates: list[tuple[Path, str | None]] = []
    if benchmark_dir:
        base = Path(benchmark_dir) / crop.set
        candidates.append((base / "HR", str(base / "LR_bicubic" / f"X{scale}")))
    if run is not None:
        if run.config.get("benchmark_dir"):  # an eval.py run: where it found its test sets
            base = Path(run.config["benchmark_dir"]) / crop.set
            candidates.append((base / "HR", str(base / "LR_bicubic" / f"X{scale}")))
        # data.test: a conf/testsets option (or, in older runs, a list of sets; data_benchmarks before that)
        from dataclasses import asdict

        from lit_sisr.data.testsets import as_image_sets

        test = (run.config.get("data") or {}).get("test") or []
        entries = [asdict(s) for s in as_image_sets(test, scale)] + list(run.config.get("data_benchmarks") or [])
        for entry in entries:
            if isinstance(entry, dict) and entry.get("name") == crop.set and entry.get("hr_dir"):
                candidates.append((Path(entry["hr_dir"]), entry.get("lr_dir")))
    for hr_dir, lr_dir in candidates:
        for suffix in IMAGE_SUFFIXES:
            path = hr_dir / f"{crop.image}{suffix}"
            if path.is_file():
                return path, lr_dir
    looked = ", ".join(str(h) for h, _ in candidates) or "nowhere (no benchmark folder)"
    raise FileNotFoundError(f"image {crop.image!r} of {crop.set} not found; looked in {looked}")


def run_network(run: Run):
    """The run's network with the weights its test results came from, opened by the one loader
    (:func:`lit_sisr.weights.load_network`): a lit-sisr checkpoint builds the network of its stored
    run config; an authors' file (``eval.py weights=...``) the run's ``model`` node at its scale."""
    from lit_sisr.weights import load_network

    if run.weights is None:
        raise FileNotFoundError(f"{run.path}: no checkpoint to load")
    kind = "authors" if run.official else "checkpoint"
    return load_network(run.weights, kind, model=run.model_node, scale=run.scale).net.eval()


def crop_panels(
    crop: Crop,
    scale: int,
    runs: Sequence[tuple[str, Run]],
    benchmark_dir: str | Path | None,
    device: str = "cpu",
) -> tuple[np.ndarray, list[tuple[str, np.ndarray, float | None]]]:
    """HR image (H x W x 3 uint8) and the panels (title, crop H x W x 3 uint8, Y-PSNR on the
    crop): HR, bicubic, then each labelled run's output. PSNR on a crop follows the protocol
    (8-bit output, MATLAB Y) without the border shave: the crop is a window inside the image."""
    import torch

    from lit_sisr.backbones import build_backbone
    from lit_sisr.data.datasets import load_pair
    from lit_sisr.data.io import to_float
    from lit_sisr.metrics import psnr_y, quantize

    hr_path, lr_dir = find_image(crop, scale, benchmark_dir, runs[0][1] if runs else None)
    lr_u8, hr_u8 = load_pair(hr_path, lr_dir, scale)
    H, W = hr_u8.shape[-2:]
    if crop.w <= 0 or crop.h <= 0 or crop.x < 0 or crop.y < 0 or crop.x + crop.w > W or crop.y + crop.h > H:
        raise ValueError(
            f"crop box x={crop.x} y={crop.y} w={crop.w} h={crop.h} is not inside {crop.set}/{crop.image} ({W}x{H} at x{scale})"
        )
    lr, hr = to_float(lr_u8)[None], to_float(hr_u8)[None]

    def window(img: torch.Tensor) -> torch.Tensor:
        return img[..., crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]

    def as_array(img: torch.Tensor) -> np.ndarray:
        return (quantize(img[0]) * 255).round().byte().permute(1, 2, 0).cpu().numpy()

    hr_crop = window(hr)
    panels: list[tuple[str, np.ndarray, float | None]] = [("HR", as_array(hr_crop), None)]
    outputs = [("Bicubic", build_backbone("bicubic", scale))]
    outputs += [(label, run_network(run)) for label, run in runs]
    with torch.no_grad():
        for label, net in outputs:
            net = net.to(device)
            sr = net(lr.to(device)).float().cpu()
            sr_crop = window(sr)
            psnr = float(psnr_y(sr_crop, hr_crop, 0)[0])
            panels.append((label, as_array(sr_crop), psnr))
    return as_array(hr), panels


def crop_figure(hr: np.ndarray, panels: Sequence[tuple[str, np.ndarray, float | None]], crop: Crop, title: str = ""):
    """The whole HR image with the crop's box, then one panel per crop."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    n = len(panels) + 1
    fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 2.9))
    axes[0].imshow(hr)
    axes[0].add_patch(
        Rectangle((crop.x - 0.5, crop.y - 0.5), crop.w, crop.h, fill=False, edgecolor="red", linewidth=1.2)
    )
    axes[0].set_title(f"{crop.set}: {crop.image}", fontsize=8)
    for ax, (label, img, psnr) in zip(axes[1:], panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label + (f"\n{psnr:.2f} dB" if psnr is not None else "\n(reference)"), fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig
