"""The Hydra task behind ``train.py``: build everything from the config, fit, test, report.

Kept in the package (not in ``train.py``) so DDP spawn and submitit can pickle what they run.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from lit_sisr.backbones import count_parameters
from lit_sisr.checkpoint_io import AtomicCheckpointIO
from lit_sisr.module import LitSR
from lit_sisr.outputs import format_table, summarize, write_config, write_results

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the option."""


PROTOCOLS = ("standard",)


def check_launch(cfg: DictConfig, multirun: bool) -> None:
    """Refuse options that cannot work, and combinations known to misbehave
    (ecosystem_notes.md section 1)."""
    if cfg.get("protocol", "standard") not in PROTOCOLS:
        raise ConfigError(f"protocol={cfg.protocol} is unknown; expected one of: {', '.join(PROTOCOLS)}")
    strategy = str(cfg.trainer.get("strategy", "auto"))
    externally_launched = "SLURM_NTASKS" in os.environ or "LOCAL_RANK" in os.environ
    if multirun and strategy.startswith("ddp") and strategy != "ddp_spawn" and not externally_launched:
        raise ConfigError(
            f"trainer.strategy={strategy} cannot run inside a local `-m` sweep: each DDP child process "
            "re-runs the whole sweep. Use trainer.devices=1, trainer.strategy=ddp_spawn, or "
            "hydra/launcher=submitit_slurm / submitit_local (one task per device)."
        )


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, LitSR, pl.Trainer]:
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    net = hydra.utils.instantiate(cfg.model)
    model = LitSR(
        net=net,
        scale=cfg.scale,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        test_set_names=[s.name for s in datamodule.test_sets],
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values()]
    if loggers:
        callbacks.append(pl.callbacks.LearningRateMonitor(logging_interval="epoch"))
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    return datamodule, model, trainer


def train(cfg: DictConfig, multirun: bool = False) -> dict[str, Any]:
    """Fit and test one configuration; returns the final metrics (for sweepers)."""
    check_launch(cfg, multirun)
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule, model, trainer = build(cfg)
    if trainer.is_global_zero:
        write_config(output_dir, model.hparams.config)

    trainable = count_parameters(model.net) > 0
    if trainable:
        last = output_dir / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if cfg.get("resume", True) and last.is_file() else None
        if ckpt_path:
            log.info("Resuming from %s", ckpt_path)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    else:
        log.info("model %s has no parameters: nothing to train, testing only", cfg.model.name)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", True) and datamodule.test_sets:
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainable else ""
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        if trainer.is_global_zero:
            paths = write_results(output_dir, model.test_rows)
            label = f"{cfg.model.name}-{cfg.attention.name} x{cfg.scale}"
            print("\n" + format_table(summarize(model.test_rows), label))
            print(f"\nPer-image results: {paths['per_image']}")
    if trainer.is_global_zero:
        print(f"Outputs: {output_dir}")
    return metrics
