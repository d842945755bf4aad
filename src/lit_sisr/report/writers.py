"""Writers of the report's tables: Markdown, CSV and LaTeX, and the report page.

They render the table model (:mod:`lit_sisr.report.model`); the interval level printed in every
header and note is the report's ``--level`` (``Settings.level``).
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from typing import Any, Iterable, Sequence

from lit_sisr.report.model import (
    FAILED,
    MISSING,
    PAPER_SETS,
    Cell,
    PairRow,
    Report,
    SetResult,
    Settings,
    Table,
    paper_value,
)
from lit_sisr.report.runs import options_label
from lit_sisr.report.stats import HELPS, HURTS, NOISE, Comparison


def level_text(level: float) -> str:
    """``0.95`` -> ``95%``, ``0.975`` -> ``97.5%``."""
    return f"{round(level * 100, 6):g}%"


def _f(value: float | None, digits: int, sign: bool = False) -> str:
    if value is None:
        return ""
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return text.replace("-", "−") if sign else text


def _pm(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return ""
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def ours_cell(r: SetResult | None) -> str:
    """``PSNR ± std / SSIM ± std`` over seeds (no ± for one seed)."""
    if r is None:
        return ""
    return _pm(r.psnr, r.psnr_std, 3) + (" / " + _pm(r.ssim, r.ssim_std, 4) if r.ssim is not None else "")


def paper_cell(paper: dict | None, set_name: str) -> str:
    p, s = paper_value(paper, set_name, "psnr"), paper_value(paper, set_name, "ssim")
    if p is None and s is None:
        return ""
    return " / ".join(x for x in (_f(p, 2), _f(s, 4)) if x)


def diff_cell(c: Comparison | None) -> str:
    """``+0.400 [+0.100, +0.600] helps`` (dB, the bootstrap interval at the report's level, verdict)."""
    if c is None:
        return ""
    return f"{_f(c.mean, 3, True)} [{_f(c.low, 3, True)}, {_f(c.high, 3, True)}] {c.verdict}"


def paper_diff_cell(psnr: float | None, ssim: float | None) -> str:
    if psnr is None:
        return ""
    return _f(psnr, 2, True) + (f" / {_f(ssim, 4, True)}" if ssim is not None else "")


def _params(cell: Cell) -> str:
    ours = _f(cell.params / 1e3, 1) if cell.params is not None else ""
    paper = cell.paper.get("params_k") if cell.paper else None
    return f"{ours} / {paper}" if paper is not None and ours else ours or (f"– / {paper}" if paper is not None else "")


def _gflops(cell: Cell) -> str:
    ours = _f(cell.flops / 1e9, 2) if cell.flops is not None else ""
    paper = cell.paper.get("gflops") if cell.paper else None
    return f"{ours} / {paper}" if paper is not None and ours else ours or (f"– / {paper}" if paper is not None else "")


def _seeds(cell: Cell) -> str:
    if cell.status == MISSING:
        return "not run"
    if cell.status == FAILED:
        return f"failed ({len(cell.failed_runs)})"
    seeds = cell.seeds
    if seeds == (None,):
        return "1 (authors')"
    return str(len(seeds))


def table_grid(table: Table, settings: Settings) -> tuple[list[str], list[list[str]]]:
    """Header and body rows (strings) shared by the Markdown and LaTeX writers."""
    ablation = table.kind != "table2"
    header = ["Network" if not ablation else "Attention", "Seeds", "Params (K) ours / paper", "GFLOPs ours† / paper"]
    for s in table.sets:  # the paper reports Set5, Set14 and B100 only
        header += [f"{s} PSNR / SSIM"] + ([f"{s} paper"] if s in PAPER_SETS else [])
        if ablation:
            header.append(f"{s} Δ PSNR vs original [{level_text(settings.level)} CI]")
    body = []
    for cell in table.cells:
        row = [cell.label, _seeds(cell), _params(cell), _gflops(cell)]
        pair = table.pair_for(cell)
        for s in table.sets:
            row += [ours_cell(cell.sets.get(s))] + ([paper_cell(cell.paper, s)] if s in PAPER_SETS else [])
            if ablation:
                row.append(diff_cell(pair.psnr.get(s)) if pair else "")
        body.append(row)
        if not ablation and pair:
            drow = [pair.label, _pair_seeds(pair), _diff_params(pair), _diff_flops(pair)]
            for s in table.sets:
                drow.append(diff_cell(pair.psnr.get(s)))
                if s in PAPER_SETS:
                    drow.append(paper_diff_cell(pair.paper_psnr.get(s), pair.paper_ssim.get(s)))
            body.append(drow)
    return header, body


def _pair_seeds(pair: PairRow) -> str:
    used = [c.seeds for c in pair.psnr.values() if c]
    if not used:
        return ""
    if all(u == (None,) for u in used):
        return "authors'"
    return f"{max(len(u) for u in used)} paired"


def _diff_params(pair: PairRow) -> str:
    a, b = pair.a.params, pair.b.params
    return _f((a - b) / 1e3, 1, True) if a is not None and b is not None else ""


def _diff_flops(pair: PairRow) -> str:
    a, b = pair.a.flops, pair.b.flops
    return _f((a - b) / 1e9, 3, True) if a is not None and b is not None else ""


def table_notes(table: Table, settings: Settings) -> list[str]:
    notes = [table.missing_line()]
    missing = table.missing()
    for status in (FAILED, MISSING):
        if missing[status]:
            names = ", ".join(c.label for c in missing[status])
            notes.append(f"{status.capitalize()}: {names}.")
    notes.append(
        "PSNR (dB) / SSIM: mean ± sample std over seeds of each run's per-image mean. "
        f"Δ: mean per-image PSNR difference over the seeds both rows have (each image's PSNR "
        f"averaged over those seeds first), with a {level_text(settings.level)} percentile bootstrap "
        f"interval ({settings.n_boot} resamples of images"
        + (" and seeds" if settings.resample_seeds else "")
        + f", seed {settings.seed}); helps / hurts = interval above / below 0, else within noise."
    )
    notes.append(
        "† Our GFLOPs: torch.utils.flop_counter, 2 per multiply-add, on a 1x3x240x360 LR input; "
        "the paper's count ~1 per multiply-add plus a bias quirk (thop-style): compare within a column only."
    )
    paper_notes = []
    for cell in table.cells:
        if cell.paper and cell.paper.get("note"):
            paper_notes.append(f"{cell.label}: {cell.paper['note']}")
        for n in cell.notes:
            paper_notes.append(f"{cell.label}: {n}")
    if paper_notes:
        notes.append("Row notes (paper errors from our copy of its tables; counting): " + " | ".join(paper_notes))
    notes += table.notes
    return notes


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def markdown_table(table: Table, settings: Settings) -> str:
    header, body = table_grid(table, settings)
    align = ["---", "---:"] + ["---:"] * (len(header) - 2)
    lines = [f"### {table.title}", "", table.protocol_line, ""]
    lines += ["| " + " | ".join(_md_escape(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    for row in body:
        bold = row[0].startswith("Δ")
        lines.append("| " + " | ".join((f"_{_md_escape(c)}_" if bold and c else _md_escape(c)) for c in row) + " |")
    lines.append("")
    lines += [f"- {n}" for n in table_notes(table, settings)]
    return "\n".join(lines) + "\n"


def verdict_rows(report: Report) -> list[dict[str, Any]]:
    """One row per paired comparison and test set (Table 2 pairs first, then ablations)."""
    out = []
    for table, pair, s in report.comparisons():
        c, cs = pair.psnr[s], pair.ssim.get(s)
        out.append(
            {
                "table": table.name,
                "protocol": table.protocol,
                "training": table.training,
                "scale": table.scale,
                "model": pair.a.model,
                "model_options": pair.a.options_text,
                "a": pair.a.attention,
                "b": pair.b.attention,
                "a_label": pair.a.label,
                "b_label": pair.b.label,
                "set": s,
                "n_images": c.n_images,
                "seeds": " ".join(str(x) for x in c.seeds),
                "psnr_diff": c.mean,
                "psnr_ci_low": c.low,
                "psnr_ci_high": c.high,
                "verdict": c.verdict,
                "ssim_diff": cs.mean if cs else None,
                "ssim_ci_low": cs.low if cs else None,
                "ssim_ci_high": cs.high if cs else None,
                "paper_psnr_diff": pair.paper_psnr.get(s),
                "paper_ssim_diff": pair.paper_ssim.get(s),
                "level": c.level,
                "n_boot": report.settings.n_boot,
                "bootstrap_seed": report.settings.seed,
            }
        )
    return out


def markdown_report(report: Report, figures: Sequence[str] = ()) -> str:
    d = report.discovery
    finished, failed = d.finished, d.failed
    lines = ["# BAM reproduction: results from runs", ""]
    lines.append(
        f"Run folders: {len(d.runs) + len(d.problems)} found — {len(finished)} finished, "
        f"{len(failed)} failed/unfinished (no test_results.csv), {len(d.problems)} unreadable."
    )
    n_cells = sum(len(t.cells) for t in report.tables)
    n_missing = sum(len(v) for t in report.tables for v in t.missing().values())
    lines.append(f"Table cells: {n_cells - n_missing} of {n_cells} with results, {n_missing} missing.")
    lines.append("")
    rows = [r for r in verdict_rows(report) if r["table"].startswith("table2_")]
    lines.append("## Did BAM help?")
    lines.append("")
    if rows:
        level = report.settings.level
        by_group: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in rows:
            by_group[r["protocol"], r["training"]].append(r)
        for (protocol, training), group in by_group.items():
            counts = {v: sum(r["verdict"] == v for r in group) for v in (HELPS, HURTS, NOISE)}
            lines.append(
                f"- Protocol `{protocol}`, weights {_md_escape(training)}: over {len(group)} paired comparisons "
                f"(network x scale x test set, BAM − original, Y-PSNR), BAM helps in {counts[HELPS]}, "
                f"hurts in {counts[HURTS]}, is within noise in {counts[NOISE]}."
            )
        lines += [
            "",
            (
                f"'helps' / 'hurts': the {level_text(level)} bootstrap interval of the mean per-image difference lies "
                f"above / below 0. The intervals are not corrected for multiple comparisons: with "
                f"{len(rows)} of them, about {len(rows) * (1 - level):.1f} would exclude 0 by chance alone "
                "if BAM changed nothing."
            ),
        ]
        lines += [
            "",
            "| Protocol | Weights | Scale | Network | Set | Images | Seeds | Δ PSNR (dB) "
            f"| {level_text(level)} CI | Verdict | Paper Δ |",
            "|---|---|---:|---|---|---:|---:|---:|---|---|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['protocol']} | {_md_escape(r['training'])} | x{r['scale']} | {_md_escape(r['b_label'])} | {r['set']} "
                f"| {r['n_images']} | {len(r['seeds'].split())} | {_f(r['psnr_diff'], 3, True)} "
                f"| [{_f(r['psnr_ci_low'], 3, True)}, {_f(r['psnr_ci_high'], 3, True)}] | {r['verdict']} "
                f"| {_f(r['paper_psnr_diff'], 2, True)} |"
            )
    else:
        lines.append("No network has finished runs with both original and BAM attention yet.")
    lines.append("")
    for kind, heading in (("table2", "Table 2"), ("table3", "Table 3"), ("ablation", "Other attention ablations")):
        chosen = [t for t in report.tables if t.kind == kind]
        if chosen:
            lines += [f"## {heading}", ""]
            for t in chosen:
                lines.append(markdown_table(t, report.settings))
    if figures:
        lines += ["## Figures", ""] + [f"- `{f}`" for f in figures] + [""]
    problems = report.discovery.problems + report.notes
    if problems:
        lines += ["## Problems and notes", ""] + [f"- {_md_escape(p)}" for p in problems] + [""]
    return "\n".join(lines)


CSV_BASE = (
    "table",
    "protocol",
    "training",
    "scale",
    "label",
    "model",
    "model_options",
    "attention",
    "attention_options",
    "status",
    "n_seeds",
    "seeds",
    "failed_runs",
    "params",
    "gflops",
    "paper_params_k",
    "paper_gflops",
)


def csv_rows(table: Table) -> tuple[list[str], list[dict[str, Any]]]:
    """Full-precision cell rows of a table (comparisons are in ``verdict_rows``)."""
    fields = list(CSV_BASE)
    for s in table.sets:
        fields += [
            f"{s}_images",
            f"{s}_psnr",
            f"{s}_psnr_std",
            f"{s}_ssim",
            f"{s}_ssim_std",
            f"{s}_paper_psnr",
            f"{s}_paper_ssim",
        ]
    fields.append("paper_note")
    rows = []
    for c in table.cells:
        row: dict[str, Any] = {
            "table": table.name,
            "protocol": table.protocol,
            "training": table.training,
            "scale": table.scale,
            "label": c.label,
            "model": c.model,
            "model_options": c.options_text,
            "attention": c.attention,
            "attention_options": options_label(c.attention_options),
            "status": c.status,
            "n_seeds": len(c.seeds),
            "seeds": " ".join(str(s) for s in c.seeds),
            "failed_runs": len(c.failed_runs),
            "params": c.params,
            "gflops": c.flops / 1e9 if c.flops is not None else None,
            "paper_params_k": c.paper.get("params_k") if c.paper else None,
            "paper_gflops": c.paper.get("gflops") if c.paper else None,
            "paper_note": c.paper.get("note") if c.paper else None,
        }
        for s in table.sets:
            r = c.sets.get(s)
            row.update(
                {
                    f"{s}_images": r.n_images if r else None,
                    f"{s}_psnr": r.psnr if r else None,
                    f"{s}_psnr_std": r.psnr_std if r else None,
                    f"{s}_ssim": r.ssim if r else None,
                    f"{s}_ssim_std": r.ssim_std if r else None,
                    f"{s}_paper_psnr": paper_value(c.paper, s, "psnr"),
                    f"{s}_paper_ssim": paper_value(c.paper, s, "ssim"),
                }
            )
        rows.append(row)
    return fields, rows


def to_csv(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
}
_TEX_UNICODE = {"±": r"$\pm$", "−": "$-$", "Δ": r"$\Delta$", "†": r"$^\dagger$", "–": "--", "—": "---"}


def tex_escape(text: str) -> str:
    """LaTeX-safe text; ``code`` (Markdown backticks) becomes \\texttt."""
    out = "".join(_TEX.get(ch, ch) for ch in text)
    for k, v in _TEX_UNICODE.items():
        out = out.replace(k, v)
    return re.sub(r"`([^`]*)`", r"\\texttt{\1}", out)


def latex_table(table: Table, settings: Settings) -> str:
    """A ``table`` environment (booktabs) with the protocol and the notes in the caption."""
    header, body = table_grid(table, settings)
    cols = "l" + "r" * (len(header) - 1)
    caption = tex_escape(f"{table.title}. {table.protocol_line} " + " ".join(table_notes(table, settings)[:1]))
    lines = [
        f"% {table.name}: generated by python -m lit_sisr.report; needs \\usepackage{{booktabs}}",
        "\\begin{table*}[t]",
        "\\centering",
        "\\scriptsize",
        f"\\caption{{{caption}}}",
        f"\\label{{tab:{table.name}}}",
        f"\\begin{{tabular}}{{{cols}}}",
        "\\toprule",
        " & ".join(tex_escape(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    for row in body:
        cells = [tex_escape(c) for c in row]
        if row[0].startswith("Δ"):
            cells = [f"\\textit{{{c}}}" if c else c for c in cells]
        lines.append(" & ".join(cells) + " \\\\")
        if row[0].startswith("Δ"):
            lines.append("\\addlinespace")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table*}"]
    notes = table_notes(table, settings)[1:]
    lines += [f"% {n}" for n in notes]
    return "\n".join(lines) + "\n"


def verdict_csv(report: Report) -> str:
    rows = verdict_rows(report)
    fields = [
        "table",
        "protocol",
        "training",
        "scale",
        "model",
        "model_options",
        "a",
        "b",
        "a_label",
        "b_label",
        "set",
        "n_images",
        "seeds",
        "psnr_diff",
        "psnr_ci_low",
        "psnr_ci_high",
        "verdict",
        "ssim_diff",
        "ssim_ci_low",
        "ssim_ci_high",
        "paper_psnr_diff",
        "paper_ssim_diff",
        "level",
        "n_boot",
        "bootstrap_seed",
    ]
    return to_csv(fields, rows)
