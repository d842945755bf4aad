"""The Hydra task behind ``train.py``: build everything from the config, fit, test, report.

Kept in the package (not in ``train.py``) so DDP spawn and submitit can pickle what they run.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lit_sisr.atomic import atomic_write_text
from lit_sisr.backbones import count_parameters
from lit_sisr.callbacks import Preempted, RecordConfig
from lit_sisr.checkpoint_io import AtomicCheckpointIO
from lit_sisr.config_checks import check_config
from lit_sisr.data.datasets import lr_source
from lit_sisr.errors import ConfigError  # noqa: F401  (re-exported for callers of check_launch)
from lit_sisr.module import LitSR
from lit_sisr.outputs import (
    CHECKPOINTS_DIR,
    DONE_FILE,
    LAST_CHECKPOINT,
    RESULT_FIELDS,
    format_table,
    summarize,
    write_results,
)
from lit_sisr.run_pictures import picture_paths
from lit_sisr.weights import check_fits, load_network

log = logging.getLogger(__name__)


def check_launch(cfg: DictConfig, multirun: bool) -> None:
    """Refuse options that cannot work, and combinations known to misbehave: the rows of
    :data:`lit_sisr.config_checks.CHECKS` for ``train`` (a single run was checked already, before
    Hydra made its folder; a multirun job is checked here)."""
    check_config(cfg, "train", multirun=multirun)


def bridge_submitit_local() -> None:
    """submitit_local starts one process per task (like SLURM) but, unlike SLURM, Lightning does not
    recognise them: export the torch.distributed variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_*)
    so that Lightning joins the processes instead of spawning its own (docs/ecosystem.md, item 2)."""
    if (
        os.environ.get("SUBMITIT_EXECUTOR") == "local"
        and int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1")) > 1
        and "LOCAL_RANK" not in os.environ
    ):
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def _plugins() -> list:
    plugins: list = [AtomicCheckpointIO()]
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        # submitit owns requeueing (USR2 -> checkpoint -> scontrol requeue); Lightning's own SLURM
        # requeue (USR1, hpc_ckpt_*.ckpt) stays off so that the two never race.
        from pytorch_lightning.plugins.environments import SLURMEnvironment

        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, LitSR, pl.Trainer]:
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    config = OmegaConf.to_container(cfg, resolve=True)
    if cfg.get("test", True):
        # Where each test set's LR images come from (stored files, or made from HR: an HR-only set),
        # recorded in config.yaml beside the per-image lr_source column.
        # (A set whose HR folder is missing is left to the test setup's error, after the training data's.)
        config["lr_source"] = {
            s.name: lr_source(s, datamodule.scale, datamodule.protocol)
            for s in datamodule.test_sets
            if Path(s.hr_dir).is_dir()
        }
    # conf/module/default.yaml: the network, optimizer and scheduler nested in the LightningModule.
    # (``config``, plain data, is given afterwards: instantiate would build every _target_ in it.)
    model = hydra.utils.instantiate(cfg.module, _partial_=True, _convert_="all")(
        config=config, test_set_names=[s.name for s in datamodule.test_sets]
    )
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    if loggers:
        callbacks.append(pl.callbacks.LearningRateMonitor(logging_interval="epoch"))
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=_plugins())
    return datamodule, model, trainer


def _training_target(cfg: DictConfig) -> dict[str, Any]:
    """What "finished" means for a run folder: the training length asked for, and whether it was tested."""
    trainer = cfg.trainer
    return {
        "max_epochs": trainer.get("max_epochs"),
        "max_steps": trainer.get("max_steps", -1),
        "test": bool(cfg.get("test", True)),
    }


def finished_metrics(output_dir: Path, cfg: DictConfig) -> dict[str, float] | None:
    """The metrics recorded by a finished run of the same training length in ``output_dir``, else None.

    ``done.json`` is written atomically as the very last step of :func:`train`, so a run that was
    killed (timeout, preemption, failure) has none and is resumed from ``checkpoints/last.ckpt``;
    a run asked to train longer than the recorded one is resumed too."""
    path = output_dir / DONE_FILE
    if not path.is_file():
        return None
    done = json.loads(path.read_text())
    target = _training_target(cfg)
    if any(done.get("target", {}).get(k) != v for k, v in target.items()):
        return None
    return done["metrics"]


def _finish_wandb(failed: bool, preempted: bool = False) -> None:
    """End this job's W&B run (if any): one run per job, marked failed when the job failed, and
    marked preempting when it stopped on a signal (it continues under the same id when resumed)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        try:
            if preempted:
                wandb.run.mark_preempting()
            wandb.finish(exit_code=1 if failed else 0)
        except Exception as exc:  # noqa: BLE001
            if not preempted:
                raise
            # SLURM signals every process of a requeued job at once, W&B's service too: its segment
            # may stay unfinished; the requeued job continues the same run (docs/slurm.md).
            log.warning(
                "W&B run not finished while the job stops (%s: %s); it continues under the same id",
                type(exc).__name__,
                exc,
            )


def _log_test_table(trainer: pl.Trainer, rows: list[dict]) -> None:
    from pytorch_lightning.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and rows:
            columns = [f for f in RESULT_FIELDS if f in rows[0]]
            logger.log_table(key="test/results", columns=columns, data=[[r[c] for c in columns] for r in rows])


def train(cfg: DictConfig, multirun: bool = False) -> dict[str, Any]:
    """Fit and test one configuration; returns the final metrics (for sweepers).

    With ``resume`` on (the default), a configuration whose folder records a finished run is not
    retrained (its recorded metrics are returned), and an unfinished one continues from
    ``checkpoints/last.ckpt``: re-launching a sweep only runs what is left."""
    bridge_submitit_local()
    check_launch(cfg, multirun)
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("resume", True):
        done = finished_metrics(output_dir, cfg)
        if done is not None:
            msg = f"{cfg.run_name}: already finished ({output_dir / DONE_FILE}), skipped"
            log.info(msg)  # Hydra's console handler: stdout
            return done
    pl.seed_everything(cfg.seed, workers=True)
    failed, preempted = True, False
    try:
        metrics = _train(cfg, output_dir)
        failed = False
        return metrics
    except Preempted:
        preempted = True
        raise
    except SIGTERMException as stop:
        preempted = True
        # Lightning's own SIGTERM stop (outside the training loop, e.g. while testing) exits with
        # status 0; make it a failure that says what to do. During training the SignalCheckpoint
        # callback handles SIGTERM itself (checkpoint, then this kind of message).
        raise SystemExit(
            f"stopped by SIGTERM before {cfg.run_name} finished: re-run the same command to resume ({output_dir})"
        ) from stop
    finally:
        _finish_wandb(failed, preempted)


def _best_checkpoint(trainer: pl.Trainer) -> str:
    """The best checkpoint by the monitored metric (other checkpoint callbacks write last.ckpt only)."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, pl.callbacks.ModelCheckpoint) and callback.monitor and callback.best_model_path:
            return callback.best_model_path
    return ""


def _train(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    datamodule, model, trainer = build(cfg)
    # config.yaml is (re)written only once the run really starts (data set up, checkpoint restored)
    trainer.callbacks.append(RecordConfig(output_dir, model.hparams.config))

    trainable = count_parameters(model.net) > 0
    if trainable:
        last = output_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
        ckpt_path = str(last) if cfg.get("resume", True) and last.is_file() else None
        if ckpt_path:
            # One read (weights.load_network): a checkpoint of another network, width or scale is
            # named in one line, not a state-dict dump, and Lightning resumes from what was read.
            resumed = load_network(last, kind="checkpoint")
            check_fits(model.net, resumed)
            getattr(trainer.strategy.checkpoint_io, "preload", lambda *_: None)(last, resumed.checkpoint)
            log.info("Resuming from %s", ckpt_path)
        elif cfg.get("init_from"):
            # Fine-tuning (e.g. experiment=drln_finetune): start from another run's network weights;
            # optimiser, schedule and counters start afresh. A resume of this run ignores it.
            source = load_network(cfg.init_from, kind="checkpoint")
            check_fits(model.net, source)
            model.net.load_state_dict(source.net.state_dict())
            log.info("Initialised the network from %s", cfg.init_from)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    else:
        log.info("model %s has no parameters: nothing to train, testing only", cfg.model.name)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", True) and datamodule.test_sets:
        best = _best_checkpoint(trainer) if trainable else ""
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        _log_test_table(trainer, model.test_rows)
        if trainer.is_global_zero:
            paths = write_results(output_dir, model.test_rows)
            label = f"{cfg.model.name}-{cfg.attention.name} x{cfg.scale}"
            print("\n" + format_table(summarize(model.test_rows), label))
            print(f"\nPer-image results: {paths['per_image']}")
    if trainer.is_global_zero:
        # The very last step: a folder with done.json is a finished run (skipped on re-launch).
        atomic_write_text(
            output_dir / DONE_FILE,
            json.dumps({"run_name": cfg.run_name, "target": _training_target(cfg), "metrics": metrics}, indent=1)
            + "\n",
        )
        print(f"Outputs: {output_dir}")
        for picture in picture_paths(trainer):
            print(f"Picture: {picture}")
    return metrics
