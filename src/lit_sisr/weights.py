"""Loading network weights: our Lightning checkpoints and the authors' released files.

Every file is read with ``torch.load(weights_only=True)``: a checkpoint that would need to run
code on load is refused with a message naming the file. Authors' files come in several shapes
(a bare state dict, ``{"state_dict": ...}``, DataParallel's ``module.`` prefix) and in the
formats each backbone declares in ``authors_formats`` (lit_sisr.backbones._authors: the original
repository's and the BAM repository's key names, input range and the constructor options that
reproduce the authors' function; docs/architectures.md). The format of a file is found by which
converter's keys fit the network. Matching is strict: a missing or unexpected key is an error
that lists a few of them.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lit_sisr.attention import as_factory
from lit_sisr.backbones import BACKBONES, build_backbone
from lit_sisr.backbones._authors import OFFICIAL, AuthorsFormat, authors_formats
from lit_sisr.errors import UserError


class WeightsError(UserError, RuntimeError):
    """A weight file that cannot be loaded into the requested network."""


def read_state(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True`` and one-line errors that name the file.

    A pickle that would import and call anything but tensors and plain containers is refused
    before any of it runs (PyTorch's restricted unpickler). When the load fails, the file's pickle
    opcodes are read (:func:`_unsafe_globals`, whatever torch's message says) and the message names
    the first callable it asks for that the restricted unpickler does not allow; truncated, empty
    or foreign files get "not a readable PyTorch checkpoint"."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # refused pickle, corrupted zip, truncated or empty file, foreign format
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise WeightsError(
                f"{path}: refused to load: unpickling it would call {unsafe[0]} (only tensors and plain "
                "containers are allowed, weights_only=True), so it may run code; do not load it unless you trust its source"
            ) from None
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {_reason(err)}); corrupted or truncated?"
        ) from None


def _reason(err: BaseException) -> str:
    """The informative part of a torch.load error, on one line."""
    text = str(err)
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.S)
    text = detail.group(1) if detail else text
    first = " ".join(text.split()).split(". ")[0]
    return first or "empty or truncated file"


def _pickles(path: Path) -> Iterator[bytes]:
    """The pickle streams of a torch file: ``*/data.pkl`` of the zip format, or the whole legacy file."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    if name.endswith("data.pkl"):
                        yield archive.read(name)
        except (zipfile.BadZipFile, OSError, EOFError):
            return
    else:
        yield path.read_bytes()


def _globals(data: bytes) -> Iterator[str]:
    """``module.name`` of every global the pickles in ``data`` import (GLOBAL, INST, STACK_GLOBAL),
    read with :mod:`pickletools` (nothing is unpickled). A legacy torch file holds several pickles
    followed by raw tensor bytes: reading stops at the first thing that is not a pickle."""
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        strings: list[str] = []
        memo: dict[int, str] = {}
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):
                    yield str(arg).replace(" ", ".")
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    yield f"{strings[-2]}.{strings[-1]}"
                elif isinstance(arg, str) and "UNICODE" in op.name:
                    strings.append(arg)
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                    memo[int(arg)] = strings[-1]
                elif op.name in ("MEMOIZE",) and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                    strings.append(memo[int(arg)])
        except Exception:  # not (or no longer) a pickle: corrupted, or the tensor bytes of a legacy file
            return


def _allowed(name: str) -> bool:
    """Would ``torch.load(weights_only=True)`` accept the global ``name``? Its built-in allow-list (a
    private helper of torch, read when present; else every ``torch.*`` name) and the user's
    ``torch.serialization.add_safe_globals``."""
    try:
        from torch import _weights_only_unpickler

        if name in _weights_only_unpickler._get_allowed_globals():
            return True
    except (ImportError, AttributeError):
        if name.startswith("torch."):
            return True
    for entry in torch.serialization.get_safe_globals():
        obj = entry[0] if isinstance(entry, tuple) else entry
        if name == (entry[1] if isinstance(entry, tuple) else f"{obj.__module__}.{obj.__qualname__}"):
            return True
    return False


def _unsafe_globals(path: Path) -> list[str]:
    """The callables the pickles of ``path`` would import that the restricted unpickler refuses."""
    found = (name for data in _pickles(path) for name in _globals(data))
    return [name for name in dict.fromkeys(found) if not _allowed(name)]


def _extract_state_dict(obj: dict, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "params", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise WeightsError(f"{path}: no state dict of tensors found")
    return obj


def read_authors_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an authors' file, DataParallel's ``module.`` prefix removed."""
    return _authors_state(read_state(path), Path(path))


def _authors_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in _extract_state_dict(obj, path).items()}


def declared_formats(cls: type) -> Mapping[str, AuthorsFormat]:
    """The authors' formats of a backbone class; a network that declares none (bicubic) loads its
    authors' keys as they are."""
    return authors_formats(cls) or {OFFICIAL: AuthorsFormat("")}


def load_official_weights(net: nn.Module, path: str | Path) -> nn.Module:
    """Load an authors' file into ``net`` (strict), in the first of the network's declared formats
    whose converted keys fit it.

    The network must have been built with that format's options where it exposes them as
    attributes (``rgb_range``, ``mean_shift``, ``res_scale``, ...): otherwise the file would load
    but compute something else than the authors' network, and that is an error saying which
    options to build it with (or use :func:`load_authors_weights`, which builds it)."""
    path = Path(path)
    formats = declared_formats(type(net))
    converted = _convert_all(formats, read_authors_state(path))
    own = net.state_dict()
    fitting = [name for name, state in converted.items() if not _misfit(own, state)]
    if not fitting:
        raise _no_fit(path, type(net).__name__, {name: own for name in formats}, converted, formats)
    for name in fitting:
        if not _disagreeing(net, formats[name].options):
            net.load_state_dict(converted[name], strict=True)
            return net
    name = fitting[0]
    wrong = _disagreeing(net, formats[name].options)
    raise WeightsError(
        f"{path} is in the {_label(name, formats[name])} format of {type(net).__name__}, which computes the authors' "
        f"network only when built with {_options(formats[name].options)}; this one has "
        + ", ".join(f"{k}={v!r}" for k, v in wrong.items())
        + ": build it with those options, or load it with load_authors_weights"
    )


def load_authors_weights(
    model: str,
    scale: int,
    attention: Any,
    path: str | Path,
    *,
    format: str | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
    **options: Any,
) -> tuple[nn.Module, str]:
    """Build network ``model`` for ``scale`` and ``attention`` as the authors' code that wrote
    ``path`` computes it and load the file (strict); returns the network and the format's name.

    The network gets the format's constructor options, then ``options`` (the caller's win). With
    ``format=None`` the format is the one whose converted keys fit the network; a file that fits
    several formats computing different functions (e.g. the baseline EDSR of both repositories,
    same keys) needs ``format`` named. ``state``: the file's state dict if it was read already."""
    path = Path(path)
    formats = declared_formats(BACKBONES.get(model))
    if format is not None and format not in formats:
        raise WeightsError(f"{path}: model {model!r} has no authors' format {format!r}; it declares {sorted(formats)}")
    attention_name = as_factory(attention).name
    names = [format] if format is not None else [n for n, f in formats.items() if f.covers(attention_name)]
    if not names or not formats[names[0]].covers(attention_name):
        raise WeightsError(
            f"{path}: no authors' format of {model} describes files of attention={attention_name} "
            f"(formats: " + ", ".join(f"{_label(n, f)} for {_attentions(f)}" for n, f in formats.items()) + ")"
        )
    chosen = {name: formats[name] for name in names}
    settings = {name: {**fmt.options, **options} for name, fmt in chosen.items()}
    converted = _convert_all(chosen, dict(state) if state is not None else read_authors_state(path))
    owns = {}
    for name in names:
        with torch.device("meta"):  # keys and shapes only, no weights drawn
            owns[name] = build_backbone(model, scale, attention, **settings[name]).state_dict()
    fitting = [name for name in names if not _misfit(owns[name], converted[name])]
    if not fitting:
        raise _no_fit(path, f"{model} x{scale} attention={attention_name}", owns, converted, chosen)
    if len({repr(sorted(settings[name].items())) for name in fitting}) > 1:
        raise WeightsError(
            f"{path} fits the "
            + " and ".join(_label(n, formats[n]) for n in fitting)
            + f" formats of {model}, which compute different functions; name one with format="
            + " or ".join(repr(n) for n in fitting)
        )
    name = fitting[0]
    net = build_backbone(model, scale, attention, **settings[name])
    net.load_state_dict(converted[name], strict=True)
    return net, name


def _convert_all(formats: Mapping[str, AuthorsFormat], state: dict[str, torch.Tensor]) -> dict[str, dict]:
    return {name: fmt.convert(state) for name, fmt in formats.items()}


def _disagreeing(net: nn.Module, options: Mapping[str, Any]) -> dict[str, Any]:
    """The format's options that ``net`` exposes with another value (the net's values)."""
    missing = object()
    have = {k: getattr(net, k, missing) for k in options}
    return {k: v for k, v in have.items() if v is not missing and v != options[k]}


def _label(name: str, fmt: AuthorsFormat) -> str:
    return f"{name!r} ({fmt.repo})" if fmt.repo else repr(name)


def _options(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items()) or "its defaults"


def _attentions(fmt: AuthorsFormat) -> str:
    return "attention=" + "/".join(fmt.attentions) if fmt.attentions is not None else "any attention"


def _no_fit(
    path: Path,
    what: str,
    owns: Mapping[str, Mapping],
    converted: Mapping[str, dict],
    formats: Mapping[str, AuthorsFormat],
) -> WeightsError:
    """The misfit of the closest format (most keys in common), naming the formats tried."""
    closest = max(formats, key=lambda n: len(set(owns[n]) & set(converted[n])))
    message = f"{path} does not fit {what}: " + "; ".join(_misfit(owns[closest], converted[closest]))
    message += ". Is it a checkpoint of another network, scale or attention?"
    if len(formats) > 1 or formats[closest].repo:
        message += " (authors' formats tried: " + ", ".join(_label(n, f) for n, f in formats.items()) + ")"
    return WeightsError(message)


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


def load_network(
    path: str | Path,
    kind: str = "auto",
    model: Mapping | None = None,
    scale: int | None = None,
    check: Callable[[], None] | None = None,
) -> LoadedNetwork:
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
            raise WeightsError(
                f"{path}: no run config in the checkpoint (not a lit-sisr checkpoint); for an authors' "
                "file use weights=<file> with model=... attention=... scale=..."
            )
        if check is not None:
            check()
        return _authors_network(model, scale, path, obj)
    if not isinstance(obj.get("state_dict"), dict):
        raise WeightsError(
            f"{path}: not a lit-sisr checkpoint (no 'state_dict'); for an authors' file use weights=<file>"
        )
    net = hydra.utils.instantiate(config["model"])
    state = {k[len("net.") :]: v for k, v in obj["state_dict"].items() if k.startswith("net.")}
    _load_strict(net, state, path)
    label = f"{config['model']['name']}-{config['attention']['name']}"
    return LoadedNetwork(net, int(config["scale"]), label, config, obj, path)


def _authors_network(model: Mapping | None, scale: int | None, path: Path, obj: Any) -> LoadedNetwork:
    """An authors' file loaded into the network ``model`` describes (``obj``: the file, if read already)."""
    import hydra

    if model is None or scale is None:
        raise WeightsError(f"{path}: an authors' weight file needs model=... attention=... scale=...")
    label = f"{model['name']}-{model['attention']['name']}" if "attention" in model else str(model["name"])
    if model.get("_target_") != "lit_sisr.backbones.build_backbone":
        raise WeightsError(
            f"{path}: an authors' weight file loads only into a registered network "
            f"(model._target_ lit_sisr.backbones.build_backbone), not {model.get('_target_')}"
        )
    # The conf/model node's options (its attention factory included). The options an authors'
    # format sets (rgb_range, mean_shift, block, ...) are the format's, not the config's defaults;
    # `+model.authors_format=official|bam` names the format where the keys fit both (EDSR).
    spec = dict(hydra.utils.instantiate(model, _partial_=True).keywords)
    name, attention = spec.pop("name"), spec.pop("attention", None)
    spec.pop("scale", None)
    fmt = spec.pop("authors_format", None)
    set_by_formats = {k for f in declared_formats(BACKBONES.get(name)).values() for k in f.options}
    spec = {k: v for k, v in spec.items() if k not in set_by_formats}
    state = None if obj is None else _authors_state(obj, path)
    try:
        net, _format = load_authors_weights(name, int(scale), attention, path, format=fmt, state=state, **spec)
    except WeightsError as err:  # the command-line spelling of format=
        raise WeightsError(str(err).replace("name one with format=", "name one with +model.authors_format=")) from None
    return LoadedNetwork(net, int(scale), label, None, None, path)


def check_fits(net: nn.Module, loaded: LoadedNetwork) -> None:
    """Raise :class:`WeightsError` unless ``loaded``'s network has exactly ``net``'s keys and
    shapes (resume, ``init_from``: a checkpoint of another network, width or scale, in one line)."""
    try:
        _check_keys(net, loaded.net.state_dict(), loaded.path)
    except WeightsError as err:
        raise WeightsError(f"{err} {_trained_as({'config': loaded.config})}".rstrip()) from None


def _trained_as(hparams: dict) -> str:
    config = hparams.get("config") if isinstance(hparams, dict) else None
    try:
        return (
            f"(the checkpoint was trained as model={config['model']['name']} "
            f"attention={config['attention']['name']} scale={config['scale']})"
        )
    except (TypeError, KeyError):
        return ""


def _misfit(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading strictly where ``own`` is expected (empty: it fits)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[:3]})")
    if wrong:
        k = wrong[0]
        parts.append(
            f"{len(wrong)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)})"
        )
    return parts


def _load_strict(net: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    _check_keys(net, state, path)
    net.load_state_dict(state, strict=True)


def _check_keys(net: nn.Module, state: Mapping[str, torch.Tensor], path: Path | None) -> None:
    parts = _misfit(net.state_dict(), state)
    if parts:
        raise WeightsError(
            f"{path} does not fit {type(net).__name__}: "
            + "; ".join(parts)
            + ". Is it a checkpoint of another network, scale or attention?"
        )
