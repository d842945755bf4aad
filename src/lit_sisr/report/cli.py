"""``python -m lit_sisr.report RUNS... [--out reports]``: tables, verdicts and figures from runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from lit_sisr.atomic import atomic_write_text
from lit_sisr.report.assembly import build_report
from lit_sisr.report.model import Report, Settings, slug
from lit_sisr.report.runs import discover
from lit_sisr.report.stats import seed_key
from lit_sisr.report.writers import (
    csv_rows,
    latex_table,
    markdown_report,
    markdown_table,
    to_csv,
    verdict_csv,
    verdict_rows,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lit_sisr.report",
        description="Rebuild the BAM paper's Table 2 / Table 3, Fig. 7 and Fig. 5-style crops from "
        "finished runs (config.yaml + test_results.csv, searched recursively), with mean ± std over "
        "seeds and paired bootstrap intervals for every BAM-vs-original comparison.",
    )
    p.add_argument("runs", nargs="+", help="folders to search for runs (e.g. logs/)")
    p.add_argument("--out", default="reports", help="output folder (default: reports/)")
    p.add_argument("--bootstrap", type=int, default=10000, metavar="N", help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's numpy Generator (default 0)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--images-only", action="store_true", help="resample test images only, not seeds, in the bootstrap")
    p.add_argument("--no-complexity", action="store_true", help="skip params/FLOPs counting")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument(
        "--crop",
        nargs=6,
        metavar=("SET", "IMAGE", "X", "Y", "W", "H"),
        help="Fig. 5-style crop: test set, image name (no suffix), HR-pixel box",
    )
    p.add_argument("--crop-models", nargs="+", metavar="NAME", help="networks to crop (default: every pair)")
    p.add_argument("--crop-scales", nargs="+", type=int, metavar="S", help="scales to crop (default: all)")
    p.add_argument(
        "--benchmark-dir",
        default=None,
        help="benchmark root in the EDSR layout (default: $LIT_SISR_DATA/benchmark, else data/benchmark)",
    )
    p.add_argument("--device", default="auto", help="device for the crop networks (default: cuda if available)")
    return p


def write_report(report: Report, out: Path, figures: Sequence[str] = ()) -> list[Path]:
    """report.md, comparisons.csv and per table <name>.{md,csv,tex} under ``out``."""
    written = []
    for table in report.tables:
        base = out / "tables" / table.name
        fields, rows = csv_rows(table)
        for suffix, text in (
            (".md", markdown_table(table, report.settings)),
            (".csv", to_csv(fields, rows)),
            (".tex", latex_table(table, report.settings)),
        ):
            atomic_write_text(base.with_suffix(suffix), text)
            written.append(base.with_suffix(suffix))
    atomic_write_text(out / "comparisons.csv", verdict_csv(report))
    atomic_write_text(out / "report.md", markdown_report(report, figures))
    return written + [out / "comparisons.csv", out / "report.md"]


def _crop_jobs(report: Report, models: Sequence[str] | None, scales: Sequence[int] | None):
    """(table, pair, seed, original run, BAM run) for each Table 2 pair with checkpoints of a
    common seed (the lowest one)."""
    jobs = []
    for table in report.tables:
        if table.kind != "table2" or (scales and table.scale not in scales):
            continue
        for pair in table.pairs:
            if models and pair.a.model not in models:
                continue
            bam = {r.seed: r for r in sorted(pair.a.runs, key=lambda r: r.mtime) if r.weights}
            orig = {r.seed: r for r in sorted(pair.b.runs, key=lambda r: r.mtime) if r.weights}
            common = sorted(set(bam) & set(orig), key=seed_key)
            if common:
                jobs.append((table, pair, common[0], orig[common[0]], bam[common[0]]))
    return jobs


def make_figures(report: Report, out: Path, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    from lit_sisr.report import figures as F

    written, problems = [], []
    for (protocol, training), tables in F.fig7_groups(report).items():
        stem = out / "figures" / f"fig7_{slug(protocol)}_{slug(training)}"
        written += [str(p) for p in F.save_figure(F.fig7(tables), stem)]
    if args.crop:
        set_name, image, *box = args.crop
        crop = F.Crop(set_name, image, *(int(v) for v in box))
        device = args.device
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        bench = args.benchmark_dir or str(Path(os.environ.get("LIT_SISR_DATA", "data")) / "benchmark")
        jobs = _crop_jobs(report, args.crop_models, args.crop_scales)
        if not jobs:
            problems.append("--crop: no Table 2 pair with checkpoints of a common seed for both networks")
        for table, pair, seed, orig_run, bam_run in jobs:
            try:
                hr, panels = F.crop_panels(
                    crop, table.scale, [(pair.b.label, orig_run), (pair.a.label, bam_run)], bench, device=device
                )
            except Exception as err:  # noqa: BLE001 - one missing image must not stop the report
                problems.append(f"--crop for {pair.a.label} x{table.scale}: {type(err).__name__}: {err}")
                continue
            title = (
                f"{pair.b.label} vs {pair.a.label}, x{table.scale}, seed {seed}, protocol {table.protocol}, "
                f"{table.training}; PSNR (Y) on the crop"
            )
            stem = out / "figures" / f"fig5_{table.name}_{slug(pair.a.label)}_{slug(crop.name)}"
            written += [str(p) for p in F.save_figure(F.crop_figure(hr, panels, crop, title), stem)]
    return written, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.level < 1:
        parser.error(f"--level must be between 0 and 1, got {args.level}")
    if args.bootstrap < 1:
        parser.error(f"--bootstrap must be positive, got {args.bootstrap}")
    try:
        discovery = discover(args.runs)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = Settings(
        n_boot=args.bootstrap,
        seed=args.seed,
        level=args.level,
        resample_seeds=not args.images_only,
        complexity=not args.no_complexity,
    )
    report = build_report(discovery, settings)
    out = Path(args.out)
    figures: list[str] = []
    if not args.no_figures:
        figures, problems = make_figures(report, out, args)
        report.notes += problems
    written = write_report(report, out, [os.path.relpath(f, out) for f in figures])
    print(
        f"runs: {len(discovery.finished)} finished, {len(discovery.failed)} failed/unfinished, "
        f"{len(discovery.problems)} unreadable; {len(report.tables)} tables"
    )
    for row in verdict_rows(report):
        if row["table"].startswith("table2_"):
            print(
                f"  x{row['scale']} {row['b_label']:<12} {row['set']:<10} BAM − original {row['psnr_diff']:+.3f} dB "
                f"[{row['psnr_ci_low']:+.3f}, {row['psnr_ci_high']:+.3f}] {row['verdict']}  ({row['protocol']}; {row['training']})"
            )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"report: {out / 'report.md'} ({len(written)} files, {len(figures)} figure files)")
    if not discovery.finished:
        print("error: no finished runs (config.yaml + test_results.csv) found", file=sys.stderr)
        return 1
    if args.crop and not any("fig5_" in f for f in figures) and not args.no_figures:
        return 1
    return 0
