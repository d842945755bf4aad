"""The paper's Table 2 (network x {original, BAM}) and Table 3 (IMDN attention ablation), rebuilt
from runs, with Markdown, CSV and LaTeX writers.

One table per (protocol, training recipe, scale): tables never mix protocols, recipes or scales.
Within a table a row is a cell: network (with its options when they are not the defaults) x
attention (with its options), over all the seeds that ran it. Table 2's rows are the paper's grid
(every network of its Table 2 at that scale, original and BAM) plus whatever else ran; rows
without a finished run are empty and counted as missing (``not run``, or ``failed`` when only a
run folder without ``test_results.csv`` exists). After each original/BAM pair comes a
``Δ BAM − original`` row: the paired comparison of :mod:`lit_sisr.report.stats`. Table 3 lists
IMDN with every attention module of the paper's Table 3 (plus ``none``), each compared with IMDN's
own CCA (``original``); any other network run with other attention modules gets an ablation
table of the same layout.

Our params are ``sum(p.numel())`` of the run's own network (its ``model`` node, built on the meta
device); our GFLOPs are ``torch.utils.flop_counter`` FLOPs (2 per multiply-add) on the paper's
1x3x240x360 LR input (:mod:`lit_sisr.models_table`), not comparable with the paper's
thop-style GFLOPs. The paper's values (:mod:`lit_sisr.paper`) appear beside ours on rows built
with the networks' default options, with the paper's known errors as notes.
"""
from __future__ import annotations

import copy
import csv
import inspect
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from lit_sisr.paper import load_paper_table, paper_row
from lit_sisr.report.runs import Discovery, Run, options_label
from lit_sisr.report.stats import (
    HELPS, HURTS, NOISE, Comparison, mean_std, paired_comparison, seed_key,
)

SET_ORDER = ("Set5", "Set14", "B100", "Urban100", "Manga109")
PAPER_SETS = ("Set5", "Set14", "B100")
PROTOCOLS = {
    "standard": "MATLAB-bicubic LR; SR clamped to [0, 1] and rounded to 8 bit; Y of BT.601 "
    "(MATLAB rgb2ycbcr); `scale` pixels shaved from each border; PSNR/SSIM (Gaussian 11x11, "
    "sigma 1.5) per image, a set's figure is the mean over its images",
}
#: Table 3's attention order (the paper's), ``none`` appended; ``original`` is IMDN's CCA.
ABLATION_ORDER = ("original", "acam", "acam_star", "msam", "msam_star", "bam", "bam_star", "cbam", "none")
MISSING, FAILED = "not run", "failed"


def _paper_order() -> list[str]:
    return list(dict.fromkeys(r["model"] for r in load_paper_table(2)))


def _set_key(name: str) -> tuple:
    return (SET_ORDER.index(name), "") if name in SET_ORDER else (len(SET_ORDER), name)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


# --------------------------------------------------------------------------------------------
# cells


@dataclass
class SetResult:
    """One cell on one test set: per-seed figures and their mean/std over seeds."""

    n_images: int
    seeds: tuple
    psnr: float
    psnr_std: float | None
    ssim: float | None
    ssim_std: float | None
    per_image_psnr: dict[str, dict[Any, float]]
    per_image_ssim: dict[str, dict[Any, float]]


@dataclass
class Cell:
    model: str
    attention: str
    model_options: tuple = ()
    attention_options: tuple = ()
    label: str = ""
    runs: list[Run] = field(default_factory=list)
    failed_runs: list[Run] = field(default_factory=list)
    sets: dict[str, SetResult] = field(default_factory=dict)
    params: int | None = None
    flops: int | None = None
    paper: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.runs:
            return "ok"
        return FAILED if self.failed_runs else MISSING

    @property
    def seeds(self) -> tuple:
        return tuple(sorted({r.seed for r in self.runs}, key=seed_key))

    @property
    def options_text(self) -> str:
        return options_label(self.model_options)


@dataclass
class PairRow:
    """A − B on every test set both have."""

    label: str
    a: Cell
    b: Cell
    psnr: dict[str, Comparison | None]
    ssim: dict[str, Comparison | None]
    paper_psnr: dict[str, float | None]
    paper_ssim: dict[str, float | None]


@dataclass
class Table:
    kind: str  # "table2" or "table3" (IMDN) or "ablation" (another network)
    protocol: str
    training: str
    scale: int
    sets: list[str]
    cells: list[Cell]  # display order
    pairs: list[PairRow]
    model: str = ""  # ablation tables: the network
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        head = {"table2": "table2", "table3": "table3"}.get(self.kind, f"ablation-{self.model}")
        return f"{head}_{slug(self.protocol)}_{slug(self.training)}_x{self.scale}"

    @property
    def title(self) -> str:
        what = {
            "table2": "Table 2 (networks, original vs BAM)",
            "table3": "Table 3 (IMDN attention ablation)",
        }.get(self.kind, f"Attention ablation, {self.model}")
        return f"{what} — x{self.scale}, protocol `{self.protocol}`, trained: {self.training}"

    @property
    def protocol_line(self) -> str:
        text = PROTOCOLS.get(self.protocol, "(no description for this protocol)")
        return f"Protocol `{self.protocol}`: {text}. Scale x{self.scale}. Weights: {self.training}."

    def pair_for(self, cell: Cell) -> PairRow | None:
        return next((p for p in self.pairs if p.a is cell), None)

    def missing(self) -> dict[str, list[Cell]]:
        out: dict[str, list[Cell]] = {MISSING: [], FAILED: []}
        for cell in self.cells:
            if cell.status != "ok":
                out[cell.status].append(cell)
        return out

    def missing_line(self) -> str:
        m = self.missing()
        n_missing = len(m[MISSING]) + len(m[FAILED])
        text = f"Cells: {len(self.cells) - n_missing} of {len(self.cells)} with results"
        if n_missing:
            text += f"; {n_missing} missing ({len(m[MISSING])} not run, {len(m[FAILED])} failed/unfinished)"
        holes = sum(1 for c in self.cells if c.status == "ok" for s in self.sets if s not in c.sets)
        if holes:
            text += f"; {holes} cell x test set results missing"
        return text + "."


# --------------------------------------------------------------------------------------------
# building


@dataclass
class Settings:
    n_boot: int = 10000
    seed: int = 0
    level: float = 0.95
    resample_seeds: bool = True
    complexity: bool = True


@dataclass
class Report:
    tables: list[Table]
    discovery: Discovery
    settings: Settings
    notes: list[str] = field(default_factory=list)

    def comparisons(self) -> list[tuple[Table, PairRow, str]]:
        return [(t, p, s) for t in self.tables for p in t.pairs for s in t.sets if p.psnr.get(s)]


def _signature_defaults(model: str) -> dict[str, Any]:
    from lit_sisr.backbones import BACKBONES

    try:
        params = inspect.signature(BACKBONES.get(model)).parameters.values()
    except (KeyError, TypeError, ValueError):
        return {}
    return {
        p.name: tuple(p.default) if isinstance(p.default, list) else p.default
        for p in params if p.default is not inspect.Parameter.empty
    }


def _shown_options(cells: Sequence[Cell]) -> dict[tuple, tuple]:
    """Model options worth naming in a row label: those that differ from the network's
    defaults, and those that differ between rows of the same network."""
    by_model: dict[str, set[tuple]] = defaultdict(set)
    for c in cells:
        by_model[c.model].add(c.model_options)
    shown = {}
    for model, variants in by_model.items():
        defaults = _signature_defaults(model)
        values: dict[str, set] = defaultdict(set)
        for options in variants:
            for k, v in options:
                values[k].add(v)
        varying = {k for k, vs in values.items() if len(vs) > 1 or any(k not in dict(o) for o in variants)}
        for options in variants:
            shown[(model, options)] = tuple(
                (k, v) for k, v in options
                if k in varying or (k in defaults and defaults[k] != v)
            )
    return shown


def _paper_label(model: str, attention: str, scale: int, table: int) -> str:
    for row in load_paper_table(table):
        if row["model"] == model and row["scale"] == scale and not row["extra_data"]:
            want = "cca" if (table == 3 and attention == "original") else attention
            if row["attention"] == want:
                return row["label"]
    return ""


def _label(cell: Cell, shown: tuple, table: int, scale: int) -> str:
    base = _paper_label(cell.model, cell.attention, scale, table)
    if not base:
        if table == 2:
            base = cell.model + ("" if cell.attention == "original" else f"-{cell.attention}")
        else:
            base = cell.attention
    if shown:
        base += f" [{options_label(shown)}]"
    if cell.attention_options:
        base += f" ({options_label(cell.attention_options)})"
    return base


def _set_results(runs: list[Run], references: dict[str, set[str]], notes: list[str]) -> dict[str, SetResult]:
    """Per test set: one run per seed (the newest results win), complete image lists only."""
    by_set: dict[str, dict[Any, tuple[Run, dict[str, dict]]]] = defaultdict(dict)
    for run in sorted(runs, key=lambda r: r.mtime):
        rows_by_set: dict[str, dict[str, dict]] = defaultdict(dict)
        for row in run.results or []:
            rows_by_set[row["set"]][row["image"]] = row
        for set_name, rows in rows_by_set.items():
            if set(rows) != references[set_name]:
                lacking = sorted(references[set_name] - set(rows))
                notes.append(
                    f"{run.path}: {set_name} has {len(rows)} of {len(references[set_name])} images "
                    f"(lacks {', '.join(lacking[:3])}{'...' if len(lacking) > 3 else ''}); left out"
                )
                continue
            if run.seed in by_set[set_name]:
                older = by_set[set_name][run.seed][0]
                notes.append(f"seed {run.seed} {set_name}: {older.path} superseded by newer {run.path}")
            by_set[set_name][run.seed] = (run, rows)
    out = {}
    for set_name, per_seed in by_set.items():
        seeds = tuple(sorted(per_seed, key=seed_key))
        images = sorted(references[set_name])
        psnr_img = {i: {s: per_seed[s][1][i]["psnr"] for s in seeds} for i in images}
        has_ssim = all("ssim" in per_seed[s][1][i] for s in seeds for i in images)
        ssim_img = {i: {s: per_seed[s][1][i]["ssim"] for s in seeds} for i in images} if has_ssim else {}
        psnr_mean, psnr_std = mean_std([sum(psnr_img[i][s] for i in images) / len(images) for s in seeds])
        ssim_mean = ssim_std = None
        if has_ssim:
            ssim_mean, ssim_std = mean_std([sum(ssim_img[i][s] for i in images) / len(images) for s in seeds])
        out[set_name] = SetResult(len(images), seeds, psnr_mean, psnr_std, ssim_mean, ssim_std, psnr_img, ssim_img)
    return out


class _Complexity:
    """Params and FLOPs of a run's network, built from its ``model`` node on the meta device
    with :func:`lit_sisr.models_table.measure`; cached per node."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.cache: dict[str, tuple[int | None, int | None, str]] = {}

    def __call__(self, node: dict) -> tuple[int | None, int | None, str]:
        if not self.enabled or not node:
            return None, None, ""
        key = json.dumps(node, sort_keys=True, default=str)
        if key not in self.cache:
            import hydra
            from lit_sisr.models_table import measure

            try:
                m = measure(lambda: hydra.utils.instantiate(node))
                self.cache[key] = (m.params, m.flops, f"counted on {m.device}" if m.fallback_reason else "")
            except Exception as err:  # noqa: BLE001 - a table without one count beats no table
                self.cache[key] = (None, None, f"params/FLOPs failed: {type(err).__name__}: {err}"[:200])
        return self.cache[key]


def _paper_for(cell: Cell, shown: tuple, scale: int) -> dict | None:
    from lit_sisr.models_table import PAPER_OVERRIDES

    if cell.attention_options:
        return None
    override = PAPER_OVERRIDES.get((cell.model, scale))
    if shown and not (override and dict(shown) == override):
        return None  # not the network the paper measured
    return paper_row(cell.model, cell.attention, scale)


def _paper_value(paper: dict | None, set_name: str, metric: str) -> float | None:
    if not paper or set_name not in PAPER_SETS:
        return None
    return paper.get(f"{set_name.lower()}_{metric}")


def _pair(label: str, a: Cell, b: Cell, sets: Sequence[str], settings: Settings) -> PairRow:
    psnr, ssim, paper_psnr, paper_ssim = {}, {}, {}, {}
    for s in sets:
        ra, rb = a.sets.get(s), b.sets.get(s)
        kw = dict(n_boot=settings.n_boot, seed=settings.seed, level=settings.level,
                  resample_seeds=settings.resample_seeds)
        psnr[s] = paired_comparison(ra.per_image_psnr, rb.per_image_psnr, **kw) if ra and rb else None
        ssim[s] = (
            paired_comparison(ra.per_image_ssim, rb.per_image_ssim, **kw)
            if ra and rb and ra.per_image_ssim and rb.per_image_ssim else None
        )
        for metric, out in (("psnr", paper_psnr), ("ssim", paper_ssim)):
            pa, pb = _paper_value(a.paper, s, metric), _paper_value(b.paper, s, metric)
            out[s] = pa - pb if pa is not None and pb is not None else None
    return PairRow(label, a, b, psnr, ssim, paper_psnr, paper_ssim)


def build_report(discovery: Discovery, settings: Settings | None = None) -> Report:
    """All tables for the runs found: Table 2 and Table 3 (and other ablations) per group."""
    settings = settings or Settings()
    complexity = _Complexity(settings.complexity)
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in discovery.runs:
        groups[run.group].append(run)
    tables: list[Table] = []
    notes: list[str] = []
    for (protocol, training, scale), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        tables += _group_tables(protocol, training, scale, runs, settings, complexity, notes)
    return Report(tables, discovery, settings, notes)


def _group_tables(
    protocol: str, training: str, scale: int, runs: list[Run], settings: Settings,
    complexity: _Complexity, notes: list[str],
) -> list[Table]:
    finished = [r for r in runs if r.finished]
    references: dict[str, set[str]] = defaultdict(set)
    for run in finished:
        for row in run.results or []:
            references[row["set"]].add(row["image"])
    sets = sorted(references, key=_set_key) or list(PAPER_SETS)

    cells: dict[tuple, Cell] = {}
    for run in runs:
        cell = cells.setdefault(run.cell, Cell(run.model, run.attention, run.model_options, run.attention_options))
        (cell.runs if run.finished else cell.failed_runs).append(run)
    for cell in cells.values():
        cell.sets = _set_results(cell.runs, references, notes)
        node = (cell.runs or cell.failed_runs)[0].model_node
        cell.params, cell.flops, note = complexity(node)
        if note:
            cell.notes.append(note)
    shown = _shown_options(list(cells.values()))

    def placeholder(model: str, attention: str) -> Cell:
        cell = Cell(model, attention)
        shown[(model, ())] = ()
        return cell

    paper_models = _paper_order()
    order = {m: i for i, m in enumerate(paper_models)}

    def model_key(c: Cell) -> tuple:
        opts = shown.get((c.model, c.model_options), ())
        return (order.get(c.model, len(order)), c.model, options_label(opts), options_label(c.model_options))

    tables = []
    # ---- Table 2: original / BAM of every network
    t2 = [c for c in cells.values() if c.attention in ("original", "bam") and not c.attention_options]
    if t2:
        # the paper's grid: its networks with their default options, original and BAM
        present = {(c.model, c.attention) for c in t2 if not shown.get((c.model, c.model_options))}
        for row in load_paper_table(2):
            if row["scale"] == scale and not row["extra_data"] and (row["model"], row["attention"]) not in present:
                t2.append(placeholder(row["model"], row["attention"]))
                present.add((row["model"], row["attention"]))
        t2.sort(key=lambda c: (*model_key(c), c.attention != "original"))
        for c in t2:
            opts = shown.get((c.model, c.model_options), ())
            c.label = _label(c, opts, 2, scale)
            c.paper = _paper_for(c, opts, scale)
        pairs = []
        for c in t2:
            if c.attention == "bam" and c.status == "ok":
                b = next((o for o in t2 if o.attention == "original" and o.model == c.model
                          and o.model_options == c.model_options and o.status == "ok"), None)
                if b:
                    pairs.append(_pair("Δ BAM − original", c, b, sets, settings))
        tables.append(Table("table2", protocol, training, scale, sets, t2, pairs))

    # ---- Table 3 (IMDN) and other networks' attention ablations
    ablated = sorted(
        {(c.model, c.model_options) for c in cells.values()
         if c.attention not in ("original", "bam") or c.attention_options},
        key=lambda mo: (mo[0] != "imdn", mo[0], options_label(mo[1])),
    )
    for model, options in ablated:
        # copies: a cell's label and paper row differ between Table 2 ("IMDN") and Table 3 ("CCA")
        rows = [copy.copy(c) for c in cells.values() if c.model == model and c.model_options == options]
        is_imdn = model == "imdn"
        if is_imdn and not options:
            present = {c.attention for c in rows if not c.attention_options}
            for row in load_paper_table(3):
                name = "original" if row["attention"] == "cca" else row["attention"]
                if row["scale"] == scale and name not in present:
                    rows.append(placeholder(model, name))
                    present.add(name)
        rows.sort(key=lambda c: (
            ABLATION_ORDER.index(c.attention) if c.attention in ABLATION_ORDER else len(ABLATION_ORDER),
            c.attention, options_label(c.attention_options),
        ))
        for c in rows:
            name = _paper_label(model, c.attention, scale, 3) if is_imdn else ""
            c.label = (name or c.attention) + (
                f" ({options_label(c.attention_options)})" if c.attention_options else "")
            c.paper = _paper_for(c, shown.get((c.model, c.model_options), ()), scale) if is_imdn else None
        base = next((c for c in rows if c.attention == "original" and not c.attention_options and c.status == "ok"), None)
        pairs = []
        if base:
            for c in rows:
                if c is not base and c.status == "ok":
                    pairs.append(_pair(f"Δ vs {base.label}", c, base, sets, settings))
        kind = "table3" if is_imdn and not options else "ablation"
        label_model = model + (f" [{options_label(shown.get((model, options), ()))}]" if shown.get((model, options)) else "")
        tables.append(Table(kind, protocol, training, scale, sets, rows, pairs, model=label_model))
    return tables


# --------------------------------------------------------------------------------------------
# formatting


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
    p, s = _paper_value(paper, set_name, "psnr"), _paper_value(paper, set_name, "ssim")
    if p is None and s is None:
        return ""
    return " / ".join(x for x in (_f(p, 2), _f(s, 4)) if x)


def diff_cell(c: Comparison | None) -> str:
    """``+0.400 [+0.100, +0.600] helps`` (dB, 95% interval, verdict)."""
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


def table_grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """Header and body rows (strings) shared by the Markdown and LaTeX writers."""
    ablation = table.kind != "table2"
    header = ["Network" if not ablation else "Attention", "Seeds", "Params (K) ours / paper",
              "GFLOPs ours† / paper"]
    for s in table.sets:  # the paper reports Set5, Set14 and B100 only
        header += [f"{s} PSNR / SSIM"] + ([f"{s} paper"] if s in PAPER_SETS else [])
        if ablation:
            header.append(f"{s} Δ PSNR vs original [95% CI]")
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
        f"averaged over those seeds first), with a {int(settings.level * 100)}% percentile bootstrap "
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
    header, body = table_grid(table)
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
        out.append({
            "table": table.name, "protocol": table.protocol, "training": table.training,
            "scale": table.scale, "model": pair.a.model, "model_options": pair.a.options_text,
            "a": pair.a.attention, "b": pair.b.attention, "a_label": pair.a.label, "b_label": pair.b.label,
            "set": s, "n_images": c.n_images, "seeds": " ".join(str(x) for x in c.seeds),
            "psnr_diff": c.mean, "psnr_ci_low": c.low, "psnr_ci_high": c.high, "verdict": c.verdict,
            "ssim_diff": cs.mean if cs else None, "ssim_ci_low": cs.low if cs else None,
            "ssim_ci_high": cs.high if cs else None,
            "paper_psnr_diff": pair.paper_psnr.get(s), "paper_ssim_diff": pair.paper_ssim.get(s),
            "level": c.level, "n_boot": report.settings.n_boot, "bootstrap_seed": report.settings.seed,
        })
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
        lines += ["", (
            f"'helps' / 'hurts': the {level:.0%} bootstrap interval of the mean per-image difference lies "
            f"above / below 0. The intervals are not corrected for multiple comparisons: with "
            f"{len(rows)} of them, about {len(rows) * (1 - level):.1f} would exclude 0 by chance alone "
            "if BAM changed nothing."
        )]
        lines += ["", "| Protocol | Weights | Scale | Network | Set | Images | Seeds | Δ PSNR (dB) | 95% CI | Verdict | Paper Δ |",
                  "|---|---|---:|---|---|---:|---:|---:|---|---|---:|"]
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


CSV_BASE = ("table", "protocol", "training", "scale", "label", "model", "model_options",
            "attention", "attention_options", "status", "n_seeds", "seeds", "failed_runs",
            "params", "gflops", "paper_params_k", "paper_gflops")


def csv_rows(table: Table) -> tuple[list[str], list[dict[str, Any]]]:
    """Full-precision cell rows of a table (comparisons are in ``verdict_rows``)."""
    fields = list(CSV_BASE)
    for s in table.sets:
        fields += [f"{s}_images", f"{s}_psnr", f"{s}_psnr_std", f"{s}_ssim", f"{s}_ssim_std",
                   f"{s}_paper_psnr", f"{s}_paper_ssim"]
    fields.append("paper_note")
    rows = []
    for c in table.cells:
        row: dict[str, Any] = {
            "table": table.name, "protocol": table.protocol, "training": table.training,
            "scale": table.scale, "label": c.label, "model": c.model, "model_options": c.options_text,
            "attention": c.attention, "attention_options": options_label(c.attention_options),
            "status": c.status, "n_seeds": len(c.seeds), "seeds": " ".join(str(s) for s in c.seeds),
            "failed_runs": len(c.failed_runs), "params": c.params,
            "gflops": c.flops / 1e9 if c.flops is not None else None,
            "paper_params_k": c.paper.get("params_k") if c.paper else None,
            "paper_gflops": c.paper.get("gflops") if c.paper else None,
            "paper_note": c.paper.get("note") if c.paper else None,
        }
        for s in table.sets:
            r = c.sets.get(s)
            row.update({
                f"{s}_images": r.n_images if r else None, f"{s}_psnr": r.psnr if r else None,
                f"{s}_psnr_std": r.psnr_std if r else None, f"{s}_ssim": r.ssim if r else None,
                f"{s}_ssim_std": r.ssim_std if r else None,
                f"{s}_paper_psnr": _paper_value(c.paper, s, "psnr"),
                f"{s}_paper_ssim": _paper_value(c.paper, s, "ssim"),
            })
        rows.append(row)
    return fields, rows


def to_csv(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
_TEX_UNICODE = {"±": r"$\pm$", "−": "$-$", "Δ": r"$\Delta$", "†": r"$^\dagger$", "–": "--", "—": "---"}


def tex_escape(text: str) -> str:
    """LaTeX-safe text; ``code`` (Markdown backticks) becomes \\texttt."""
    out = "".join(_TEX.get(ch, ch) for ch in text)
    for k, v in _TEX_UNICODE.items():
        out = out.replace(k, v)
    return re.sub(r"`([^`]*)`", r"\\texttt{\1}", out)


def latex_table(table: Table, settings: Settings) -> str:
    """A ``table`` environment (booktabs) with the protocol and the notes in the caption."""
    header, body = table_grid(table)
    cols = "l" + "r" * (len(header) - 1)
    caption = tex_escape(f"{table.title}. {table.protocol_line} " + " ".join(table_notes(table, settings)[:1]))
    lines = [
        f"% {table.name}: generated by python -m lit_sisr.report; needs \\usepackage{{booktabs}}",
        "\\begin{table*}[t]", "\\centering", "\\scriptsize",
        f"\\caption{{{caption}}}", f"\\label{{tab:{table.name}}}",
        f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
        " & ".join(tex_escape(h) for h in header) + " \\\\", "\\midrule",
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
    fields = ["table", "protocol", "training", "scale", "model", "model_options", "a", "b", "a_label",
              "b_label", "set", "n_images", "seeds", "psnr_diff", "psnr_ci_low", "psnr_ci_high", "verdict",
              "ssim_diff", "ssim_ci_low", "ssim_ci_high", "paper_psnr_diff", "paper_ssim_diff", "level",
              "n_boot", "bootstrap_seed"]
    return to_csv(fields, rows)

