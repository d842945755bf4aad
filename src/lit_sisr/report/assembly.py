"""The paper's Table 2 (network x {original, BAM}) and Table 3 (IMDN attention ablation), rebuilt
from runs (the writers are in :mod:`lit_sisr.report.writers`).

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
import inspect
import json
from collections import defaultdict
from typing import Any, Sequence

from lit_sisr.paper import ablation_order, load_paper_table, paper_row
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
    set_key,
)
from lit_sisr.report.runs import Discovery, Run, options_label
from lit_sisr.report.stats import mean_std, paired_comparison, seed_key

__all__ = ["FAILED", "MISSING", "build_report"]


def _paper_order() -> list[str]:
    return list(dict.fromkeys(r["model"] for r in load_paper_table(2)))


def _signature_defaults(model: str) -> dict[str, Any]:
    from lit_sisr.backbones import BACKBONES

    try:
        params = inspect.signature(BACKBONES.get(model)).parameters.values()
    except (KeyError, TypeError, ValueError):
        return {}
    return {
        p.name: tuple(p.default) if isinstance(p.default, list) else p.default
        for p in params
        if p.default is not inspect.Parameter.empty
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
                (k, v) for k, v in options if k in varying or (k in defaults and defaults[k] != v)
            )
    return shown


def _paper_label(model: str, attention: str, scale: int, table: int) -> str:
    for row in load_paper_table(table):
        if row["model"] == model and row["scale"] == scale and not row["extra_data"]:
            if row["attention"] == attention:
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
    from lit_sisr.models_table import paper_overrides

    if cell.attention_options:
        return None
    try:
        override = paper_overrides(cell.model, scale)
    except KeyError:  # a network this installation does not know
        override = {}
    if shown and not (override and dict(shown) == override):
        return None  # not the network the paper measured
    return paper_row(cell.model, cell.attention, scale)


def _pair(label: str, a: Cell, b: Cell, sets: Sequence[str], settings: Settings) -> PairRow:
    psnr, ssim, paper_psnr, paper_ssim = {}, {}, {}, {}
    for s in sets:
        ra, rb = a.sets.get(s), b.sets.get(s)
        kw = dict(
            n_boot=settings.n_boot, seed=settings.seed, level=settings.level, resample_seeds=settings.resample_seeds
        )
        psnr[s] = paired_comparison(ra.per_image_psnr, rb.per_image_psnr, **kw) if ra and rb else None
        ssim[s] = (
            paired_comparison(ra.per_image_ssim, rb.per_image_ssim, **kw)
            if ra and rb and ra.per_image_ssim and rb.per_image_ssim
            else None
        )
        for metric, out in (("psnr", paper_psnr), ("ssim", paper_ssim)):
            pa, pb = paper_value(a.paper, s, metric), paper_value(b.paper, s, metric)
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
    protocol: str,
    training: str,
    scale: int,
    runs: list[Run],
    settings: Settings,
    complexity: _Complexity,
    notes: list[str],
) -> list[Table]:
    finished = [r for r in runs if r.finished]
    references: dict[str, set[str]] = defaultdict(set)
    for run in finished:
        for row in run.results or []:
            references[row["set"]].add(row["image"])
    sets = sorted(references, key=set_key) or list(PAPER_SETS)

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
                b = next(
                    (
                        o
                        for o in t2
                        if o.attention == "original"
                        and o.model == c.model
                        and o.model_options == c.model_options
                        and o.status == "ok"
                    ),
                    None,
                )
                if b:
                    pairs.append(_pair("Δ BAM − original", c, b, sets, settings))
        tables.append(Table("table2", protocol, training, scale, sets, t2, pairs))

    # ---- Table 3 (IMDN) and other networks' attention ablations
    ablated = sorted(
        {
            (c.model, c.model_options)
            for c in cells.values()
            if c.attention not in ("original", "bam") or c.attention_options
        },
        key=lambda mo: (mo[0] != "imdn", mo[0], options_label(mo[1])),
    )
    for model, options in ablated:
        # copies: a cell's label and paper row differ between Table 2 ("IMDN") and Table 3 ("CCA")
        rows = [copy.copy(c) for c in cells.values() if c.model == model and c.model_options == options]
        is_imdn = model == "imdn"
        if is_imdn and not options:
            present = {c.attention for c in rows if not c.attention_options}
            for row in load_paper_table(3):
                name = row["attention"]
                if row["scale"] == scale and name not in present:
                    rows.append(placeholder(model, name))
                    present.add(name)
        order = ablation_order()
        rows.sort(
            key=lambda c: (
                order.index(c.attention) if c.attention in order else len(order),
                c.attention,
                options_label(c.attention_options),
            )
        )
        for c in rows:
            name = _paper_label(model, c.attention, scale, 3) if is_imdn else ""
            c.label = (name or c.attention) + (
                f" ({options_label(c.attention_options)})" if c.attention_options else ""
            )
            c.paper = _paper_for(c, shown.get((c.model, c.model_options), ()), scale) if is_imdn else None
        base = next(
            (c for c in rows if c.attention == "original" and not c.attention_options and c.status == "ok"), None
        )
        pairs = []
        if base:
            for c in rows:
                if c is not base and c.status == "ok":
                    pairs.append(_pair(f"Δ vs {base.label}", c, base, sets, settings))
        kind = "table3" if is_imdn and not options else "ablation"
        label_model = model + (
            f" [{options_label(shown.get((model, options), ()))}]" if shown.get((model, options)) else ""
        )
        tables.append(Table(kind, protocol, training, scale, sets, rows, pairs, model=label_model))
    return tables
