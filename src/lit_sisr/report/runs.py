"""Finding finished runs and reading them back: resolved config + per-image test results.

A run is a folder holding ``config.yaml`` (the resolved run config, written by ``train.py`` and
``eval.py``) and ``test_results.csv`` (one row per test image). Folders are searched recursively;
a ``config.yaml`` without ``test_results.csv`` beside it (or with an empty one) is a failed or
unfinished run: it is kept
(``results is None``) so that the tables can count it as missing. Runs written before
``config.yaml`` existed are read from Hydra's ``.hydra/config.yaml`` instead (unresolved; the
keys the report needs are resolved one by one).

What identifies a run's table cell (see :class:`Run`):

- ``protocol``: the config's ``protocol``; runs that predate the key are ``standard``, the only
  protocol the code has ever had (as :func:`lit_sisr.training.check_launch` assumes too).
  Test-time options of ``eval.py`` are part of it: ``standard + self-ensemble x8``,
  ``standard + approximate tiles`` (exact tiles equal whole-image inference and add nothing).
- ``training``: where the weights came from: ``"<data.name>, <trainer.max_epochs> epochs"`` for
  our runs, ``"authors' weights"`` for ``eval.py weights=...`` runs. Runs trained differently
  never share a table.
- ``scale``, ``model``, ``attention`` (a network's only native module, IMDN's ``cca``, is its
  ``original``: :func:`lit_sisr.backbones.original_alias`), the model's options
  (``n_feats``, ``n_blocks``, ...) and the attention's options (``reduction``), and ``seed``.

An ``eval.py ckpt=...`` run is identified by the config stored in its checkpoint (the eval
config's own ``model``/``attention`` are its defaults, not the checkpoint's network); its
protocol is the eval config's.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from lit_sisr.backbones import original_alias
from lit_sisr.outputs import CHECKPOINTS_DIR, LAST_CHECKPOINT
from lit_sisr.outputs import CONFIG_FILE as CONFIG
from lit_sisr.outputs import RESULTS_FILE as RESULTS

DEFAULT_PROTOCOL = "standard"
OFFICIAL = "authors' weights"
_NOT_OPTIONS = {"_target_", "name", "scale", "attention", "class_path"}


@dataclass
class Run:
    """One run folder. ``results`` is None for a failed/unfinished run (no test_results.csv)."""

    path: Path
    protocol: str
    training: str
    scale: int
    model: str
    attention: str
    model_options: tuple[tuple[str, Any], ...]
    attention_options: tuple[tuple[str, Any], ...]
    seed: int | None
    results: list[dict] | None
    model_node: dict = field(repr=False, default_factory=dict)
    config: dict = field(repr=False, default_factory=dict)
    weights: Path | None = None  # checkpoint or official weight file behind the results
    official: bool = False  # ``weights`` is an authors' file (weights.load_network kind="authors")
    mtime: float = 0.0

    @property
    def finished(self) -> bool:
        return self.results is not None

    @property
    def group(self) -> tuple[str, str, int]:
        """Runs of one table: never mixes protocols, training recipes or scales."""
        return (self.protocol, self.training, self.scale)

    @property
    def cell(self) -> tuple:
        """The table row a run belongs to (within its group)."""
        return (self.model, self.model_options, self.attention, self.attention_options)


class RunError(ValueError):
    """A run folder that cannot be read; the message names it."""


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _select(cfg: DictConfig, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, key, default=default, throw_on_resolution_failure=False)
    if isinstance(value, (DictConfig,)) or OmegaConf.is_list(value):
        try:
            return OmegaConf.to_container(value, resolve=True)
        except Exception:  # noqa: BLE001 - an unresolvable sub-tree is as good as absent here
            return default
    return value


def read_results(path: str | Path) -> list[dict]:
    """Rows of a ``test_results.csv`` with numbers as floats (``scale`` as int)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {"set": raw["set"], "image": raw["image"]}
            row["scale"] = int(raw["scale"]) if raw.get("scale") else None
            for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim"):
                if raw.get(key) not in (None, ""):
                    row[key] = float(raw[key])
            if "psnr" not in row:
                raise RunError(f"{path}: a row without psnr ({raw})")
            rows.append(row)
    return rows


def _checkpoint_config(path: Path) -> dict:
    """The run config stored in a lit-sisr checkpoint (memory-mapped: tensors are not read)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001
        raise RunError(
            f"{path}: cannot read the checkpoint's config, which identifies an eval.py ckpt= run ({err})"
        ) from None
    config = (ckpt.get("hyper_parameters") or {}).get("config") if isinstance(ckpt, dict) else None
    if not config or "model" not in config:
        raise RunError(f"{path}: no run config in the checkpoint")
    return config


def _resolve_path(text: str, cfg: DictConfig) -> Path:
    path = Path(text)
    if not path.is_absolute():
        root = _select(cfg, "paths.root_dir")
        path = Path(root) / path if root else path
    return path


def _best_checkpoint(folder: Path) -> Path | None:
    """The checkpoint a train run was tested with: its newest ``best-*.ckpt``, else ``last.ckpt``."""
    ckpts = folder / CHECKPOINTS_DIR
    best = sorted(ckpts.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    last = ckpts / LAST_CHECKPOINT
    return last if last.is_file() else None


def _inference_suffix(cfg: DictConfig) -> str:
    """Self-ensemble and inexact tiling change the figures: such runs get tables of their own."""
    suffix = ""
    if _select(cfg, "self_ensemble"):
        suffix += " + self-ensemble x8"
    if _select(cfg, "tile") and _select(cfg, "tile_exact") is False:
        suffix += " + approximate tiles"
    return suffix


def load_run(folder: str | Path, config_path: str | Path | None = None) -> Run:
    """Read one run folder (``config_path`` defaults to ``<folder>/config.yaml``)."""
    folder = Path(folder)
    config_path = Path(config_path) if config_path else folder / CONFIG
    try:
        cfg = OmegaConf.load(config_path)
    except Exception as err:  # noqa: BLE001
        raise RunError(f"{config_path}: unreadable config ({err})") from None
    protocol = str(_select(cfg, "protocol") or DEFAULT_PROTOCOL) + _inference_suffix(cfg)
    identity = cfg
    weights: Path | None = None
    official = False
    ckpt = _select(cfg, "ckpt")
    if ckpt:  # eval.py ckpt=...: the network is the checkpoint's
        weights = _resolve_path(str(ckpt), cfg)
        identity = OmegaConf.create(_checkpoint_config(weights))
    elif _select(cfg, "weights"):
        weights, official = _resolve_path(str(_select(cfg, "weights")), cfg), True
    elif _select(cfg, "task_name") != "eval":
        weights = _best_checkpoint(folder)

    model_node = _select(identity, "model")
    if not isinstance(model_node, dict) or "name" not in model_node:
        raise RunError(f"{config_path}: no model node (model.name) in the config")
    attention_node = model_node.get("attention") or _select(identity, "attention") or {}
    if isinstance(attention_node, str):
        attention_node = {"name": attention_node}
    model = str(model_node["name"])
    attention = str(attention_node.get("name", "original"))
    attention = original_alias(model, attention)
    scale = _select(identity, "scale", model_node.get("scale"))
    if scale is None:
        raise RunError(f"{config_path}: no scale in the config")

    if official:
        training = OFFICIAL
    else:
        data = _select(identity, "data.name") or _select(identity, "task_name") or "unknown data"
        epochs = _select(identity, "trainer.max_epochs")
        training = f"{data}, {epochs} epochs" if epochs is not None else str(data)
    seed = None if official else _select(identity, "seed")

    results_path = folder / RESULTS
    results = read_results(results_path) if results_path.is_file() else None
    if results == []:  # a header and no images: the test never ran
        results = None
    if results is not None:
        wrong = {r["scale"] for r in results if r["scale"] not in (None, int(scale))}
        if wrong:
            raise RunError(f"{results_path}: scale {sorted(wrong)} in the results, {scale} in the config")
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - Hydra's own config.yaml has ${hydra:...} interpolations
        config = {"data": {"test": _select(cfg, "data.test")}}
    return Run(
        path=folder,
        protocol=protocol,
        training=training,
        scale=int(scale),
        model=model,
        attention=attention,
        model_options=_freeze({k: v for k, v in model_node.items() if k not in _NOT_OPTIONS}),
        attention_options=_freeze({k: v for k, v in attention_node.items() if k not in _NOT_OPTIONS and v is not None}),
        seed=None if seed is None else int(seed),
        results=results,
        model_node=model_node,
        config=config,
        weights=weights if weights is not None and weights.is_file() else None,
        official=official,
        mtime=results_path.stat().st_mtime if results is not None else 0.0,
    )


@dataclass
class Discovery:
    runs: list[Run]
    problems: list[str]  # unreadable run folders, one message each

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.finished]

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if not r.finished]


def find_run_folders(folders: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(run folder, config file) for every run under ``folders`` (recursively), sorted.

    A folder with ``config.yaml`` is a run; one with ``test_results.csv`` and only Hydra's
    ``.hydra/config.yaml`` (a run from before ``config.yaml`` was written) is one too.
    """
    found: dict[Path, Path] = {}
    for top in folders:
        top = Path(top)
        if not top.exists():
            raise FileNotFoundError(f"runs folder not found: {top}")
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            if here.name == ".hydra":
                dirnames[:] = []
                continue
            if CONFIG in filenames:
                found[here.resolve()] = here / CONFIG
            elif RESULTS in filenames and (here / ".hydra" / CONFIG).is_file():
                found[here.resolve()] = here / ".hydra" / CONFIG
    return sorted(found.items())


def discover(folders: Iterable[str | Path]) -> Discovery:
    """Every run under ``folders``; folders that cannot be read become ``problems``."""
    runs, problems = [], []
    for folder, config in find_run_folders(folders):
        try:
            runs.append(load_run(folder, config))
        except (RunError, OSError, ValueError, KeyError) as err:
            problems.append(str(err))
    return Discovery(runs, problems)


def options_label(options: tuple[tuple[str, Any], ...]) -> str:
    """``n_feats=16,n_blocks=1`` for a row label."""
    return ",".join(f"{k}={_plain(v)}" for k, v in options)


def _plain(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(_plain(v) for v in value) + "]"
    return str(value)
