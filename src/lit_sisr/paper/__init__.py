"""The BAM paper's printed Table 2 and Table 3, kept as data.

``table2.csv`` (control experiments: 12 networks x {original, BAM} x {x2, x3, x4}, plus the
DRLN-BAM rows fine-tuned on extra data) and ``table3.csv`` (the IMDN attention ablation) are our
transcription of the paper's values: params in thousands, GFLOPs as printed (the authors'
thop-style counter on a 1x3x240x360 *LR* input, see docs/protocol.md),
and PSNR/SSIM on Set5/Set14/B100 (the paper reports no Urban100/Manga109). Empty cells are values
the paper does not give. Each row names our registry model (``model``) and attention
(``attention``: ``original``/``bam`` in Table 2, the attention module's registry name in Table 3,
``original`` being IMDN's own CCA), so rows can be matched with ``build_backbone``. The rows of
Table 3 are in the paper's order, which :func:`ablation_order` gives the report.

The ``note`` column flags the paper's known errors (docs/architectures.md): the
MSRN x4 and RCAN x4 rows swap the original and BAM params/GFLOPs, the OISR-LF-s x4 row is a
16-block model, two GFLOPs cells are truncated rather than rounded, s-LWSR32-BAM x3 Set14
repeats the x2 value, and where the authors' counter differs from ``sum(p.numel())``. Several
remarks are joined by ``"; "``; those about PSNR/SSIM only start with ``"metrics: "``.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources
from typing import Any

#: Benchmarks with PSNR/SSIM columns (``set5_psnr``, ``set5_ssim``, ...).
BENCHMARKS = ("set5", "set14", "b100")

_INT = ("table", "scale")
_FLOAT = ("params_k", "gflops", *(f"{b}_{m}" for b in BENCHMARKS for m in ("psnr", "ssim")))
_BOOL = ("extra_data",)
_TEXT_OPTIONAL = ("venue",)


def _convert(raw: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, text in raw.items():
        if key in _INT:
            row[key] = int(text)
        elif key in _FLOAT:
            row[key] = float(text) if text != "" else None
        elif key in _BOOL:
            row[key] = text == "1"
        elif key in _TEXT_OPTIONAL:
            row[key] = text or None
        else:
            row[key] = text
    return row


@functools.lru_cache(maxsize=None)
def _read(table: int) -> tuple[dict[str, Any], ...]:
    if table not in (2, 3):
        raise ValueError(f"the paper has data tables 2 and 3, not {table!r}")
    text = resources.files(__name__).joinpath(f"table{table}.csv").read_text(encoding="utf-8")
    return tuple(_convert(raw) for raw in csv.DictReader(io.StringIO(text)))


def load_paper_table(table: int) -> list[dict[str, Any]]:
    """Rows of the paper's Table ``table`` (2 or 3) with typed values.

    Keys: ``table``, ``scale`` (int); ``backbone``, ``label`` (the paper's names), ``model``,
    ``attention`` (registry names), ``note`` (str, "" when none); ``venue`` (str or None);
    ``extra_data`` (bool); ``params_k``, ``gflops`` and ``<set>_psnr``/``<set>_ssim`` for set in
    :data:`BENCHMARKS` (float, None when the paper gives no value). Returns fresh dicts.
    """
    return [dict(row) for row in _read(table)]


def paper_row(model: str, attention: str, scale: int, *, extra_data: bool = False) -> dict[str, Any] | None:
    """The paper's row for a registry model/attention/scale, or None if the paper has none.

    Table 2 is searched first (``original``/``bam``); other attention names are looked up in
    Table 3 (the IMDN ablation).
    """
    for table in (2, 3):
        for row in _read(table):
            if (
                row["model"] == model
                and row["attention"] == attention
                and row["scale"] == scale
                and row["extra_data"] == extra_data
            ):
                return dict(row)
    return None


def ablation_order() -> tuple[str, ...]:
    """Attention names in the order of the paper's Table 3 (``original`` first), ``none`` appended."""
    return (*dict.fromkeys(row["attention"] for row in _read(3)), "none")


__all__ = ["BENCHMARKS", "ablation_order", "load_paper_table", "paper_row"]
