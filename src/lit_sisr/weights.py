"""Loading network weights: our Lightning checkpoints and the authors' released files.

Every file is read with ``torch.load(weights_only=True)``: a checkpoint that would need to run
code on load is refused with a message naming the file. Official checkpoints come in several
shapes (a bare state dict, ``{"state_dict": ...}``, DataParallel's ``module.`` prefix); a backbone
whose parameter names differ from its authors' provides ``convert_official_state_dict``.
Matching is strict: a missing or unexpected key is an error that lists a few of them.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn


class WeightsError(RuntimeError):
    """A weight file that cannot be loaded into the requested network."""


def read_state(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True`` and one-line errors that name the file.

    A pickle that would import and call anything but tensors and plain containers is refused
    before any of it runs (PyTorch's restricted unpickler); the message says which callable it
    asked for. Truncated, empty or foreign files get "not a readable PyTorch checkpoint"."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _UNSAFE_GLOBAL.search(str(err))
        if found:
            raise WeightsError(
                f"{path}: refused to load: unpickling it would call {found.group(1)} (only tensors and plain "
                "containers are allowed, weights_only=True), so it may run code; do not load it unless you trust its source"
            ) from None
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint (the restricted unpickler rejected it: "
            f"{_reason(err)}); corrupted, or not a checkpoint?"
        ) from None
    except Exception as err:  # corrupted zip, truncated or empty file, foreign format: all "unreadable"
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {_reason(err)}); corrupted or truncated?"
        ) from None


_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def _reason(err: BaseException) -> str:
    """The informative part of a torch.load error, on one line."""
    text = str(err)
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.S)
    text = detail.group(1) if detail else text
    first = " ".join(text.split()).split(". ")[0]
    return first or "empty or truncated file"


def _extract_state_dict(obj: dict, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "params", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise WeightsError(f"{path}: no state dict of tensors found")
    return obj


def load_official_weights(net: nn.Module, path: str | Path) -> nn.Module:
    """Load an authors' released checkpoint into ``net`` (strict)."""
    return _load_official_state(net, read_state(path), Path(path))


def _load_official_state(net: nn.Module, obj: Any, path: Path) -> nn.Module:
    state = _extract_state_dict(obj, path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    convert = getattr(net, "convert_official_state_dict", None)
    if convert is not None:
        state = convert(state)
    _load_strict(net, state, path)
    return net


# -- one loader for every weights file ------------------------------------------------------------
@dataclass
class LoadedNetwork:
    """What :func:`load_network` returns: the network with its weights loaded, its scale, a label
    (``<model>-<attention>``), the run config stored in a lit-sisr checkpoint (None for an
    authors' file) and, for a lit-sisr checkpoint, the file's contents (resume hands them to
    Lightning instead of a second read)."""

    net: nn.Module
    scale: int
    label: str
    config: dict | None = None
    checkpoint: dict | None = None
    path: Path | None = None


def run_config(obj: Any) -> dict | None:
    """The run config stored in a lit-sisr checkpoint's hyper-parameters, or None."""
    hparams = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    config = hparams.get("config") if isinstance(hparams, dict) else None
    return config if isinstance(config, dict) and "model" in config else None


def load_network(path: str | Path, kind: str = "auto", model: Mapping | None = None, scale: int | None = None,
                 check: Callable[[], None] | None = None) -> LoadedNetwork:
    """Open any weights file once, check it and return the network: a lit-sisr checkpoint
    (``kind="checkpoint"``: network, attention and scale from the run config stored in it) or an
    authors' file (``kind="authors"``: ``model``, the ``conf/model`` node with its attention, and
    ``scale`` say which network it is); ``"auto"`` tells them apart by the stored run config.
    ``check`` (e.g. the config check of ``model=``/``scale=``) runs before an authors' file is
    loaded. Used by ``eval.py``, ``predict.py``, export, ``init_from`` and resume."""
    import hydra

    path = Path(path)
    if kind == "authors":
        if check is not None:
            check()
        return _authors_network(model, scale, path, None)
    obj = read_state(path)
    config = run_config(obj)
    if config is None:
        if kind == "checkpoint" or model is None:
            raise WeightsError(f"{path}: no run config in the checkpoint (not a lit-sisr checkpoint); for an authors' "
                               "file use weights=<file> with model=... attention=... scale=...")
        if check is not None:
            check()
        return _authors_network(model, scale, path, obj)
    if not isinstance(obj.get("state_dict"), dict):
        raise WeightsError(f"{path}: not a lit-sisr checkpoint (no 'state_dict'); for an authors' file use weights=<file>")
    net = hydra.utils.instantiate(config["model"])
    state = {k[len("net."):]: v for k, v in obj["state_dict"].items() if k.startswith("net.")}
    _load_strict(net, state, path)
    label = f"{config['model']['name']}-{config['attention']['name']}"
    return LoadedNetwork(net, int(config["scale"]), label, config, obj, path)


def _authors_network(model: Mapping | None, scale: int | None, path: Path, obj: Any) -> LoadedNetwork:
    """An authors' file loaded into the network ``model`` describes (``obj``: the file, if read already)."""
    import hydra

    if model is None or scale is None:
        raise WeightsError(f"{path}: an authors' weight file needs model=... attention=... scale=...")
    label = f"{model['name']}-{model['attention']['name']}" if "attention" in model else str(model["name"])
    authors_loader = globals().get("load_authors_weights")  # MERGE SEAM (golden255): see below
    if authors_loader is not None and model.get("_target_") == "lit_sisr.backbones.build_backbone":
        # load_authors_weights(model, scale, attention, path, *, format=None, **options) -> (net, format):
        # builds the network with the format's options and loads strictly, detecting the format.
        spec = dict(hydra.utils.instantiate(model, _partial_=True).keywords)
        name, attention = spec.pop("name"), spec.pop("attention", None)
        spec.pop("scale", None)
        net, _format = authors_loader(name, int(scale), attention, path, **spec)
    else:
        # Fallback until lit_sisr.weights.load_authors_weights exists (removed at merge).
        net = hydra.utils.instantiate(model)
        _load_official_state(net, read_state(path) if obj is None else obj, path)
    return LoadedNetwork(net, int(scale), label, None, None, path)


def check_fits(net: nn.Module, loaded: LoadedNetwork) -> None:
    """Raise :class:`WeightsError` unless ``loaded``'s network has exactly ``net``'s keys and
    shapes (resume, ``init_from``: a checkpoint of another network, width or scale, in one line)."""
    try:
        _check_keys(net, loaded.net.state_dict(), loaded.path)
    except WeightsError as err:
        raise WeightsError(f"{err} {_trained_as({'config': loaded.config})}".rstrip()) from None


def load_lightning_weights(net: nn.Module, path: str | Path, prefix: str = "net.") -> dict:
    """Load the network part of a lit-sisr checkpoint; returns the checkpoint's hyper-parameters."""
    path = Path(path)
    ckpt = read_state(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise WeightsError(f"{path}: not a lit-sisr checkpoint (no 'state_dict'); for an authors' file use weights=<file>")
    hparams = ckpt.get("hyper_parameters") or {}
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    try:
        _load_strict(net, state, path)
    except WeightsError as err:
        raise WeightsError(f"{err} {_trained_as(hparams)}".rstrip()) from None
    return hparams


def check_lightning_checkpoint(net: nn.Module, path: str | Path, prefix: str = "net.") -> None:
    """Raise :class:`WeightsError` unless the lit-sisr checkpoint ``path`` fits ``net`` exactly
    (same keys and shapes); ``net`` is left unchanged. For resuming: a checkpoint of another
    network, width or scale is named in one line instead of a state-dict dump."""
    import copy

    load_lightning_weights(copy.deepcopy(net), path, prefix)


def _trained_as(hparams: dict) -> str:
    config = hparams.get("config") if isinstance(hparams, dict) else None
    try:
        return (f"(the checkpoint was trained as model={config['model']['name']} "
                f"attention={config['attention']['name']} scale={config['scale']})")
    except (TypeError, KeyError):
        return ""


def _load_strict(net: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    _check_keys(net, state, path)
    net.load_state_dict(state, strict=True)


def _check_keys(net: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[:3]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)})")
        raise WeightsError(
            f"{path} does not fit {type(net).__name__}: " + "; ".join(parts)
            + ". Is it a checkpoint of another network, scale or attention?"
        )
