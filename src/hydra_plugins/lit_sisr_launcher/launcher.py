"""Hydra launchers for sweeps under submitit: ``hydra/launcher=slurm`` (one SLURM job array) and
``hydra/launcher=local`` (the same path as local processes). docs/slurm.md describes their use.

They are hydra-submitit-launcher's ``SlurmLauncher`` / ``LocalLauncher`` (``_target_`` in
conf/hydra/launcher/*.yaml; Hydra takes launchers only from ``hydra_plugins``) with three changes, made in Hydra's launcher interface (``launch`` and the
job-side ``__call__``):

* **Only what is left is submitted.** A configuration whose run folder records a finished run of
  the same length (``done.json``, :func:`lit_sisr.training.finished_metrics`) is not submitted; a
  fully finished sweep submits nothing and says so. (The task function still skips a finished folder
  itself, for the basic launcher and for a folder finished while the array waited in the queue.)
* **A failed job fails in SLURM.** Hydra's ``run_job`` turns an exception of the task into a
  returned "failed" status, which submitit would report as a success (exit 0, SLURM ``COMPLETED``);
  here it is raised again, so the array task ends non-zero (SLURM ``FAILED``).
* **The launching command waits for every job**, then ends with a summary naming each failed job,
  its SLURM job id and its log files, instead of stopping at the first failure. Without SLURM
  accounting (``sacct`` unavailable) a job that left the queue without a result (killed by SLURM:
  out of memory, time limit after the last requeue) counts as failed instead of being waited for;
  the launcher then watches ``squeue`` and the result files instead of asking ``sacct`` at every
  poll, and filters submitit's "Bypassing sacct error" warning out of its remaining calls (that
  message only: other submitit warnings and errors still show).
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

log = logging.getLogger(__name__)

POLL_S = 2.0


class _SacctBypassFilter(logging.Filter):
    """Drops submitit's "Bypassing sacct error" warning (installed only where accounting is off)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


def slurm_accounting_off() -> bool:
    """True when the cluster runs without accounting storage (``sacct`` cannot answer)."""
    try:
        config = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(
        line.split("=", 1)[-1].strip() == "accounting_storage/none"
        for line in config.splitlines()
        if line.startswith("AccountingStorageType")
    )


class _Failure:
    """A job of the sweep that did not return a result."""

    def __init__(self, name: str, job: Any, reason: str) -> None:
        self.name, self.job, self.reason = name, job, reason

    def __str__(self) -> str:
        return (
            f"{self.name}: job {self.job.job_id} {self.reason}\n"
            f"    logs: {self.job.paths.stdout}\n          {self.job.paths.stderr}"
        )


class _SweepLauncher:
    """The changes shared by both launchers (mixed in before hydra-submitit-launcher's classes)."""

    _EXECUTOR: str

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        import lit_sisr

        lit_sisr.register_resolvers()  # the job process resolves the config: it needs them too
        ret = super().__call__(*args, **kwargs)  # type: ignore[misc]
        if ret.status == JobStatus.FAILED:
            raise ret._return_value  # the task's exception: submitit records it, the process exits 1
        # Finished: a time-limit warning arriving while the process exits (SLURM sends it up to
        # ~30 s early) must neither requeue the finished job nor kill it (Python restores the
        # default action, termination, when it shuts down): ignore it from now on.
        from lit_sisr.callbacks import _submitit_signal

        signal.signal(_submitit_signal(), signal.SIG_IGN)
        return ret

    def _finished(self, overrides: Sequence[str]) -> tuple[Path, JobReturn | None]:
        """The configuration's run folder, and a completed JobReturn (with the recorded metrics)
        when it holds a finished run."""
        from lit_sisr.training import DONE_FILE, finished_metrics

        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))  # type: ignore[attr-defined]
        out = Path(str(OmegaConf.select(cfg, "hydra.sweep.dir"))) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
        metrics = finished_metrics(out, cfg) if cfg.get("resume", True) else None
        if metrics is None:
            return out, None
        log.info("\t%s: already finished (%s), not submitted", out.name, out / DONE_FILE)
        return out, JobReturn(
            overrides=list(overrides),
            cfg=cfg,
            working_dir=str(out),
            task_name=cfg.get("task_name"),
            status=JobStatus.COMPLETED,
            _return_value=metrics.get("val/psnr"),
        )

    def _executor(self) -> Any:
        import submitit

        params = dict(self.params)  # type: ignore[attr-defined]
        folder = params.pop("submitit_folder")
        max_num_timeout = params.pop("max_num_timeout", None)
        init = {} if max_num_timeout is None else {f"{self._EXECUTOR}_max_num_timeout": max_num_timeout}
        executor = submitit.AutoExecutor(folder=folder, cluster=self._EXECUTOR, **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())  # keys submitit takes without a prefix
        executor.update_parameters(**{k if k in shared else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra.core.singleton import Singleton

        sweep_dir = Path(str(self.config.hydra.sweep.dir))  # type: ignore[attr-defined]
        folders, returns = map(list, zip(*(self._finished(o) for o in job_overrides)))
        todo = [i for i, r in enumerate(returns) if r is None]
        if not todo:
            log.info("All %d jobs of this sweep have finished (%s): nothing to submit", len(returns), sweep_dir)
            return returns  # type: ignore[return-value]
        no_accounting = self._EXECUTOR == "slurm" and slurm_accounting_off()
        submitit_log = logging.getLogger("submitit")
        if no_accounting and not any(isinstance(f, _SacctBypassFilter) for f in submitit_log.filters):
            submitit_log.addFilter(_SacctBypassFilter())
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            "Submitit '%s': %d of %d jobs to run, sweep output dir: %s",
            self._EXECUTOR,
            len(todo),
            len(returns),
            sweep_dir,
        )
        for i in todo:
            log.info("\t#%d : %s", initial_job_idx + i, " ".join(filter_overrides(job_overrides[i])))
        args = [
            (
                list(job_overrides[i]),
                "hydra.sweep.dir",
                initial_job_idx + i,
                f"job_id_for_{initial_job_idx + i}",
                Singleton.get_state(),
            )
            for i in todo
        ]
        jobs = self._executor().map_array(self, *zip(*args))
        log.info(
            "Submitted %s (%d tasks); logs: %s", _array_id(jobs), len(jobs), Path(jobs[0].paths.stdout).parent.parent
        )
        results, failures = self._wait(jobs, [str(folders[i]) for i in todo], watch_queue=no_accounting)
        for i, ret in zip(todo, results):
            returns[i] = ret
        if failures:
            summary = "\n".join(str(f) for f in failures)
            log.error("%d of %d jobs failed:\n%s", len(failures), len(jobs), summary)
            raise SystemExit(
                f"error: {len(failures)} of {len(jobs)} jobs of the sweep failed "
                f"({len(returns) - len(jobs)} finished earlier, not submitted):\n{summary}"
            )
        return returns  # type: ignore[return-value]

    def _wait(self, jobs: list, names: list[str], watch_queue: bool) -> tuple[list[JobReturn | None], list[_Failure]]:
        """Wait for every job; their returns and the failures. ``watch_queue``: SLURM without
        accounting (a job has ended when its result file exists, or when it has left the queue)."""
        results: list[JobReturn | None] = [None] * len(jobs)
        failures: list[_Failure] = []
        pending, missing = set(range(len(jobs))), {i: 0 for i in range(len(jobs))}
        while pending:
            queued = _in_queue(jobs) if watch_queue else None
            for i in sorted(pending):
                job = jobs[i]
                # (without accounting, job.done() would ask sacct: an error and a warning per poll)
                # (a result file of a job still queued is a requeued job's earlier segment's)
                ended = (
                    job.done() if queued is None else (job.paths.result_pickle.exists() and job.job_id not in queued)
                )
                if not ended:
                    if queued is None or job.job_id in queued:
                        missing[i] = 0
                        continue
                    missing[i] += 1  # out of the queue without a result: twice in a row, it is gone
                    if missing[i] < 2:
                        continue
                    pending.discard(i)
                    failures.append(
                        _Failure(
                            names[i],
                            job,
                            "left the SLURM queue without a result "
                            f"(killed by SLURM? see `scontrol show job {job.job_id}`)",
                        )
                    )
                    continue
                pending.discard(i)
                try:
                    results[i] = job.results()[0]
                except Exception as exc:  # noqa: BLE001  (any exception of the task, or submitit's UncompletedJobError)
                    failures.append(_Failure(names[i], job, f"failed: {_error_line(exc)}"))
            if pending:
                time.sleep(POLL_S)
        return results, failures


def _error_line(exc: Exception) -> str:
    """The task's own error (``SomeError: message``, the last one in submitit's traceback text)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b.*", line)]
    return errors[-1] if errors else (next((line for line in lines if line), type(exc).__name__))


def _array_id(jobs: list) -> str:
    first = str(jobs[0].job_id)
    return f"job array {first.split('_')[0]}" if "_" in first else f"job {first}"


def _in_queue(jobs: list) -> set[str]:
    """The job ids (``<array>_<task>``) SLURM still holds as pending or running (``squeue``)."""
    arrays = sorted({str(j.job_id).split("_")[0] for j in jobs})
    done = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(arrays)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:  # all of them finished and purged (MinJobAge)
            return set()
        return {str(j.job_id) for j in jobs}  # e.g. the controller restarts: still queued, ask again
    return set(done.stdout.split())


class SlurmLauncher(_SweepLauncher, submitit_launcher.SlurmLauncher):
    """``hydra/launcher=slurm``: the sweep as one SLURM job array (conf/hydra/launcher/slurm.yaml)."""


class LocalLauncher(_SweepLauncher, submitit_launcher.LocalLauncher):
    """``hydra/launcher=local``: the same path as local processes (conf/hydra/launcher/local.yaml)."""
