"""A run folder's metrics file is its history: Lightning's CSV logger, continued on resume.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` whenever a run starts in a folder that holds
one, so a resumed run kept only the rows written after the resume. :class:`ResumableCSVLogger` is
that logger with one change: on its first write, the existing file is continued. Rows at or after
the first step this launch logs are dropped first (a resumed run logs them again from its
checkpoint; a run started over, ``resume=false``, rewrites the whole file), every earlier row is
kept as it was. With ``flush_logs_every_n_steps: 1`` (conf/logger/csv.yaml) every logged row is
on disk before the next step, so a killed run loses none of the rows its checkpoint covers
(docs/reliability.md; tests/test_resume.py compares a killed and resumed run's file with an
uninterrupted run's).
"""

from __future__ import annotations

import csv
import io

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from lit_sisr.atomic import atomic_write_text


class _ContinuedWriter(ExperimentWriter):
    """Lightning's experiment writer, continuing an existing ``metrics.csv`` instead of deleting it."""

    def __init__(self, log_dir: str) -> None:
        self._continued = False
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes the metrics file here; it is continued in :meth:`save` instead."""

    def save(self) -> None:
        if not self._continued and self.metrics:
            self._continued = True
            if self._fs.isfile(self.metrics_file_path):
                self._keep_rows_before(min(int(row["step"]) for row in self.metrics))
        super().save()

    def _keep_rows_before(self, first_step: int) -> None:
        """Rewrite the existing file (atomically) with its rows of steps before ``first_step``;
        its columns become this writer's, so later rows are appended under the same header."""
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            keys = list(reader.fieldnames or [])
            rows = [row for row in reader if row.get("step") not in (None, "") and int(float(row["step"])) < first_step]
        self.metrics_keys = sorted(keys)
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_file_path, buf.getvalue())


class ResumableCSVLogger(CSVLogger):
    """``pytorch_lightning.loggers.CSVLogger`` whose ``metrics.csv`` a resumed run continues."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuedWriter(log_dir=self.log_dir)
        return self._experiment
