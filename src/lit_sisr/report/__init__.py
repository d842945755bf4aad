"""The paper's tables and figures rebuilt from finished runs, with honest statistics.

``python -m lit_sisr.report logs/ [--out reports] [--crop Set14 barbara 100 80 96 96]`` (or
``python report.py ...``) reads every run under the given folders (``config.yaml`` +
``test_results.csv``; W&B is not needed) and writes, under ``--out``:

- ``report.md``: "Did BAM help?" (every BAM-vs-original comparison with its verdict), then each
  Table 2 / Table 3 with the protocol it was measured under, and the problems met;
- ``tables/<table>.{md,csv,tex}``: one Table 2 (networks x {original, BAM}) or Table 3 (IMDN
  ablation) per protocol x training recipe x scale, with the paper's values beside ours;
- ``comparisons.csv``: every paired comparison (mean per-image difference, bootstrap interval,
  verdict, the paper's difference);
- ``figures/fig7_*.{png,pdf}`` (PSNR gain per network by scale, one panel per test set) and, with
  ``--crop``, ``figures/fig5_*.{png,pdf}`` (HR, bicubic, original, BAM on one crop, with PSNR).

Modules: :mod:`~lit_sisr.report.runs` (finding and reading runs), :mod:`~lit_sisr.report.stats`
(pure statistics: mean/std over seeds, paired differences, bootstrap), :mod:`~lit_sisr.report.model`
(the table model), :mod:`~lit_sisr.report.assembly` (building tables from runs),
:mod:`~lit_sisr.report.writers` (Markdown, CSV, LaTeX), :mod:`~lit_sisr.report.figures`, :mod:`~lit_sisr.report.cli`.
"""

from lit_sisr.report.assembly import build_report
from lit_sisr.report.cli import main
from lit_sisr.report.model import Settings
from lit_sisr.report.runs import Run, discover, load_run
from lit_sisr.report.stats import Comparison, bootstrap_ci, mean_std, paired_comparison, verdict

__all__ = [
    "Comparison",
    "Run",
    "Settings",
    "bootstrap_ci",
    "build_report",
    "discover",
    "load_run",
    "main",
    "mean_std",
    "paired_comparison",
    "verdict",
]
