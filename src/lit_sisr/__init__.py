"""lit-sisr: single-image super-resolution with PyTorch Lightning and Hydra."""

import os

from omegaconf import OmegaConf

__version__ = "0.1.0"


def _launch_dir() -> str:
    """The directory the command was started from: Hydra's ``runtime.cwd`` inside a job, else the
    current directory. Unlike ``${hydra:runtime.cwd}`` it also resolves where Hydra has not set its
    config yet (the sweeper resolving ``hydra.sweep.dir`` of a multirun)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.cwd)
    return os.getcwd()


def run_id(*parts: object) -> str:
    """A stable 12-character id from the experiment and run names (the W&B run id: a re-launched or
    requeued job continues the same W&B run)."""
    import hashlib

    return hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()[:12]


def eval_run_tag(self_ensemble: object, tile: object, tile_exact: object) -> str:
    """The eval run-name suffix for test-time options that change the figures: ``-se8`` for the
    x8 self-ensemble, ``-tiles<N>approx`` for inexact tiling (exact tiles change nothing), so
    such an evaluation does not overwrite the plain one of the same network."""
    tag = "-se8" if self_ensemble else ""
    if tile and tile_exact is False:
        tag += f"-tiles{tile}approx"
    return tag


def gpus_per_node(accelerator: object, devices: object) -> int | None:
    """``${lit_sisr.gpus_per_node:${trainer.accelerator},${trainer.devices}}`` (conf/hydra/launcher):
    ``hydra.launcher.gpus_per_node`` from the trainer: none for a CPU trainer (no GPU gres asked
    for, so a CPU or debug partition can run it), else one GPU per device (``auto`` accelerators
    count as GPU: the cluster path is for GPUs). ``devices`` must then be a count or a list."""
    if str(accelerator) == "cpu":
        return None
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    raise ValueError(
        f"trainer.devices={devices} with hydra/launcher=slurm: expected a number of GPUs per node "
        "(or set hydra.launcher.gpus_per_node)"
    )


def register_resolvers() -> None:
    """Register the ``${lit_sisr.*:}`` resolvers the configs use (``launch_dir`` in conf/paths,
    ``run_id`` in conf/logger/wandb.yaml, ``eval_run_tag`` in conf/eval.yaml, ``gpus_per_node`` in
    conf/hydra/launcher). Called by the entry points (train.py, eval.py, predict.py, export) before
    Hydra composes, and by the submitit launchers' job side; idempotent."""
    for name, fn in (
        ("launch_dir", _launch_dir),
        ("run_id", run_id),
        ("eval_run_tag", eval_run_tag),
        ("gpus_per_node", gpus_per_node),
    ):
        OmegaConf.register_new_resolver(f"lit_sisr.{name}", fn, replace=True)
