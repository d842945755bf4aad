"""What a run leaves in its folder: the resolved config, per-image test results, a summary, and
the end-of-run table. ``lit_sisr.report`` reads these files back (they are the source of truth,
W&B is not needed).

Folder layout: ``config.yaml`` (the resolved run config; earlier different ones as ``config.prev-<n>.yaml``), ``test_results.csv`` (one row per test
image: set, scale, image, psnr, ssim, bicubic_psnr, bicubic_ssim, lr_source), ``test_summary.json``
(per-set means, image counts and LR source), ``checkpoints/``. ``lr_source`` says where the LR
images came from: ``stored`` (the set's LR files), ``bicubic`` (made from HR by the MATLAB-exact
bicubic: a set with HR images only), ``pil_bicubic`` (``protocol=bam_paper``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from pathlib import Path

from lit_sisr.atomic import atomic_write_text

# The names of what a run folder holds, defined here only.
CONFIG_FILE = "config.yaml"
RESULTS_FILE = "test_results.csv"
SUMMARY_FILE = "test_summary.json"
DONE_FILE = "done.json"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"

RESULT_FIELDS = ("set", "scale", "image", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "lr_source")
# The per-image figures of a row (averaged per set by summarize).
METRIC_FIELDS = RESULT_FIELDS[3:7]


def summarize(rows: list[dict]) -> list[dict]:
    """Per set: image count and mean of each figure (the dataset figure is the per-image mean)."""
    by_set: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_set[row["set"]].append(row)
    summary = []
    for name, items in by_set.items():
        entry = {"set": name, "scale": items[0]["scale"], "images": len(items)}
        for key in METRIC_FIELDS:
            if key in items[0]:
                entry[key] = sum(r[key] for r in items) / len(items)
        if "lr_source" in items[0]:
            entry["lr_source"] = items[0]["lr_source"]  # one per set (data.datasets.lr_source)
        summary.append(entry)
    return summary


def format_table(summary: list[dict], model_label: str) -> str:
    """A plain-text table: model vs bicubic per test set, Y-PSNR (dB) / SSIM."""
    head = f"{'set':<12}{'images':>7}  {model_label:>22}  {'bicubic':>18}  {'gain dB':>8}"
    lines = [head, "-" * len(head)]
    for s in summary:
        model = f"{s['psnr']:.3f} / {s['ssim']:.4f}"
        lines.append(
            f"{s['set']:<12}{s['images']:>7}  {model:>22}  "
            f"{s['bicubic_psnr']:>8.3f} / {s['bicubic_ssim']:.4f}  {s['psnr'] - s['bicubic_psnr']:>+8.3f}"
        )
    made = [s["set"] for s in summary if s.get("lr_source") == "bicubic"]
    if made:
        lines.append(f"(no LR files for {', '.join(made)}: LR made from HR by the MATLAB-exact bicubic)")
    return "\n".join(lines)


def write_config(folder: str | Path, config: dict) -> Path:
    """``config.yaml``: the resolved configuration of the run, as plain YAML. A different earlier
    one is kept beside it as ``config.prev-<n>.yaml`` (n = 1, 2, ...: a run folder is history)."""
    from omegaconf import OmegaConf

    folder = Path(folder)
    path = folder / CONFIG_FILE
    text = OmegaConf.to_yaml(OmegaConf.create(config))
    if path.is_file():
        previous = path.read_text()
        if previous == text:
            return path
        taken = [
            int(m.group(1))
            for p in folder.glob("config.prev-*.yaml")
            if (m := re.fullmatch(r"config\.prev-(\d+)\.yaml", p.name))
        ]
        n = max(taken, default=0) + 1
        atomic_write_text(folder / f"config.prev-{n}.yaml", previous)
    atomic_write_text(path, text)
    return path


def write_results(folder: str | Path, rows: list[dict]) -> dict[str, Path]:
    """``test_results.csv`` (one row per image) and ``test_summary.json``, written atomically."""
    folder = Path(folder)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f for f in RESULT_FIELDS if not rows or f in rows[0]])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items() if k in RESULT_FIELDS})
    paths = {"per_image": folder / RESULTS_FILE, "summary": folder / SUMMARY_FILE}
    atomic_write_text(paths["per_image"], buf.getvalue())
    atomic_write_text(paths["summary"], json.dumps(summarize(rows), indent=1) + "\n")
    return paths
