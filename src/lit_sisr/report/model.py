"""The report's table model: cells, paired rows, tables and the report, as plain data.

:mod:`lit_sisr.report.assembly` fills them from runs; :mod:`lit_sisr.report.writers` renders
them (Markdown, CSV, LaTeX). A table's protocol line comes from the protocol registry
(:data:`lit_sisr.protocols.PROTOCOLS`), so every protocol describes itself in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lit_sisr.report.runs import Discovery, Run, options_label
from lit_sisr.report.stats import Comparison, seed_key

SET_ORDER = ("Set5", "Set14", "B100", "Urban100", "Manga109")
PAPER_SETS = ("Set5", "Set14", "B100")
MISSING, FAILED = "not run", "failed"


def set_key(name: str) -> tuple:
    return (SET_ORDER.index(name), "") if name in SET_ORDER else (len(SET_ORDER), name)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def protocol_description(protocol: str) -> str:
    """What a protocol measures, from its registry entry; test-time options (``standard +
    self-ensemble x8``) follow the base protocol's description."""
    from lit_sisr.protocols import PROTOCOLS

    base, plus, extra = protocol.partition(" + ")
    entry = PROTOCOLS.get(base)
    text = entry.description if entry is not None and entry.description else "(no description for this protocol)"
    return text + (f"; test-time options: {extra}" if plus else "")


def paper_value(paper: dict | None, set_name: str, metric: str) -> float | None:
    if not paper or set_name not in PAPER_SETS:
        return None
    return paper.get(f"{set_name.lower()}_{metric}")


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
        text = protocol_description(self.protocol)
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
