"""Checks of the options a user can get wrong, as one table (:data:`CHECKS`), run before anything
is created.

Each row names one option, the tasks it applies to (``train``, ``eval``, ``predict``), what is
accepted and an example of a wrong value; its ``check`` returns ``None`` when the value is fine
and otherwise the one-line message, which starts ``<option>=<value>``. docs/errors.md lists the
table (tests/test_config_checks.py checks the two agree and walks every row).

A single run is checked by the Hydra callback :class:`CheckBeforeLaunch` (``hydra.callbacks`` in
conf/), which runs after Hydra composed the configuration and before it creates the run folder,
writes ``.hydra/`` or starts a process; the tasks call :func:`check_config` again (a multirun job,
a task called in-process), which changes nothing when the values are fine.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from lit_sisr.errors import ConfigError

TASKS = ("train", "eval", "predict")
_UNSET = object()


@dataclass(frozen=True)
class Launch:
    """What a check may look at: the composed config, the task and whether it is one job of a multirun."""

    cfg: DictConfig
    task: str
    multirun: bool = False

    def get(self, option: str, default: Any = None) -> Any:
        value = OmegaConf.select(self.cfg, option, default=default)
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


@dataclass(frozen=True)
class Check:
    """One row of the table: ``check(value, launch)`` returns None (fine) or what is expected."""

    option: str
    tasks: tuple[str, ...]
    accepted: str
    bad: str  # a wrong value, as typed on the command line (docs, tests)
    check: Callable[[Any, Launch], str | None]
    applies: Callable[[Launch], bool] = lambda launch: True
    needs: tuple[str, ...] = ()  # overrides the example needs besides ``option=bad`` (docs, tests)
    label: str | None = None  # the name printed, when users type another (``model`` for ``model.name``)

    def message(self, launch: Launch) -> str | None:
        value = launch.get(self.option, _UNSET)
        if value is _UNSET or not self.applies(launch):
            return None
        expected = self.check(value, launch)
        if expected is None:
            return None
        shown = "null" if value is None else '""' if value == "" else value
        return f"{self.label or self.option}={shown}{expected if expected.startswith((' ', ';', ':')) else ': ' + expected}"


# -- value tests -------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_at_least(low: int, *also: Any) -> Callable[[Any, Launch], str | None]:
    """An integer >= ``low`` (or one of ``also``, e.g. -1 for "no limit")."""
    extra = "".join(f" or {a}" for a in also)

    def check(value: Any, launch: Launch) -> str | None:
        if (_is_int(value) and value >= low) or (value in also and not isinstance(value, bool)):
            return None
        return f"expected an integer >= {low}{extra}"

    return check


def non_negative_number(value: Any, launch: Launch) -> str | None:
    """A finite number >= 0 (a learning rate of 0 keeps the weights: tests use it)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return None
    return "expected a number >= 0"


def boolean(value: Any, launch: Launch) -> str | None:
    return None if isinstance(value, bool) else "expected true or false"


def optional(check: Callable[[Any, Launch], str | None]) -> Callable[[Any, Launch], str | None]:
    def maybe(value: Any, launch: Launch) -> str | None:
        expected = None if value is None else check(value, launch)
        return None if expected is None else f"{expected}, or null"

    return maybe


def _blocking_file(path: Path) -> Path | None:
    """The regular file at ``path`` or above it, which keeps ``path`` from being a folder."""
    for part in (path, *path.parents):
        if part.exists():
            return part if not part.is_dir() else None
    return None


def folder_path(value: Any, launch: Launch) -> str | None:
    if not value:
        return "expected a folder"
    blocker = _blocking_file(Path(str(value)).absolute())
    if blocker is None:
        return None
    return f" cannot be a folder: {blocker} is a file; expected a folder path"


# -- model, attention, scale, protocol --------------------------------------------------------


def known_model(value: Any, launch: Launch) -> str | None:
    """A registered network, or any name for a network given by ``model.class_path``."""
    from lit_sisr.backbones import BACKBONES

    if launch.get("model.class_path"):
        return None
    return None if value in BACKBONES else f" is unknown; expected one of: {', '.join(BACKBONES.names())}"


def known_attention(value: Any, launch: Launch) -> str | None:
    """A registered module or ``original``; with ``attention.class_path`` (the user's own module,
    README "Add your own attention") the class must import and take ``channels`` first."""
    from lit_sisr.attention import attention_names, import_attention

    class_path = launch.get("attention.class_path")
    if class_path:
        try:
            import_attention(class_path)
        except ValueError as error:
            return f": {error}"
        return None
    return None if value in attention_names() else f" is unknown; expected one of: {', '.join(attention_names())}"


def supported_scale(value: Any, launch: Launch) -> str | None:
    """One of the scales the model's class declares (``scales``, see :mod:`lit_sisr.backbones`)."""
    from lit_sisr.backbones import BACKBONES

    model = launch.get("model.name")
    scales = list(getattr(BACKBONES.get(model), "scales", (2, 3, 4))) if model in BACKBONES else [2, 3, 4]
    choices = ", ".join(map(str, scales))
    if not _is_int(value):
        return f"expected an integer, one of: {choices}"
    return None if value in scales else f" is not supported by model={model}; expected one of: {choices}"


def known_protocol(value: Any, launch: Launch) -> str | None:
    from lit_sisr.protocols import PROTOCOLS

    return None if value in PROTOCOLS else f" is unknown; expected one of: {', '.join(PROTOCOLS)}"


# -- devices -------------------------------------------------------------------------------------

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def _available(accelerator: str) -> int:
    """Devices of ``accelerator`` this machine has (``auto``: Lightning's pick, CUDA, then MPS, then 1 CPU)."""
    if accelerator in ("gpu", "cuda"):
        return _cuda_count()
    if accelerator == "mps":
        return int(_mps())
    if accelerator == "auto":
        return _cuda_count() or int(_mps()) or 0  # 0: no GPU, Lightning picks the CPU
    return os.cpu_count() or 1


def accelerator_present(value: Any, launch: Launch) -> str | None:
    if value not in ACCELERATORS:
        return f"expected one of: {', '.join(ACCELERATORS)}"
    if value != "auto" and _available(value) == 0:
        return f" but this machine has no {'CUDA GPU' if value in ('gpu', 'cuda') else value.upper()}; expected one of: cpu, auto"
    return None


def world_size(launch: Launch) -> int | None:
    """The number of training processes ``trainer.devices`` and ``trainer.num_nodes`` ask for (None: not a count)."""
    devices, nodes = launch.get("trainer.devices", 1), launch.get("trainer.num_nodes", 1)
    accelerator = str(launch.get("trainer.accelerator", "auto"))
    if devices == "auto" or devices == -1:
        count = _available(accelerator) if accelerator != "cpu" or devices == -1 else 1
        count = count or (os.cpu_count() or 1 if devices == -1 else 1)  # auto without a GPU: the CPU
    elif isinstance(devices, list):
        count = len(devices)
    elif _is_int(devices):
        count = devices
    else:
        return None
    return count * nodes if _is_int(nodes) else None


def _set_sizes(launch: Launch) -> Iterator[tuple[str, int]]:
    """(name, image count) of each validation and test set whose size is known before it is built: a
    folder that exists (counted, with its ``split``), or a ``split`` of a folder still to be made."""
    from lit_sisr.data.io import IMAGE_SUFFIXES

    val, test = launch.get("data.val"), launch.get("data.test") or []
    for spec in ([val] if isinstance(val, dict) else []) + [t for t in test if isinstance(t, dict)]:
        folder, split = Path(str(spec.get("hr_dir", ""))), spec.get("split")
        if folder.is_dir():
            count = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if split:
                count = len(range(count)[slice(*split)])
        elif split and len(split) == 2 and all(_is_int(s) for s in split):
            count = max(0, split[1] - split[0])
        else:
            continue
        yield str(spec.get("name", folder)), count


def devices_present(value: Any, launch: Launch) -> str | None:
    """A device count the machine has, and no more DDP processes than the smallest evaluation set has
    images (each process scores its own images; an empty one would wait forever in the metric sync)."""
    ok = (
        value in ("auto", -1)
        or (_is_int(value) and value >= 1)
        or (isinstance(value, list) and value and all(_is_int(v) and v >= 0 for v in value))
    )
    if not ok:
        return "expected an integer >= 1, -1 (all), auto, or a list of device indices"
    accelerator = str(launch.get("trainer.accelerator", "auto"))
    have = _available(accelerator)
    wanted = len(value) if isinstance(value, list) else value if _is_int(value) and value > 0 else None
    if wanted and accelerator != "cpu" and have and wanted > have:  # have 0 (auto, no GPU): any CPU count
        return f" but this machine has {have} {accelerator} device(s); expected at most {have}"
    processes = world_size(launch)
    if processes and processes > 1:
        for name, images in _set_sizes(launch):
            if images < processes:
                return (
                    f" starts {processes} processes but evaluation set {name} has {images} image(s); "
                    f"expected at most {images} (each process needs an image), or a larger set"
                )
    return None


def sweepable_strategy(value: Any, launch: Launch) -> str | None:
    """docs/ecosystem.md, item 1: a DDP child started by Lightning re-runs the
    whole ``-m`` sweep of the basic launcher."""
    externally_launched = "SLURM_NTASKS" in os.environ or "LOCAL_RANK" in os.environ
    value = str(value)
    if launch.multirun and value.startswith("ddp") and value != "ddp_spawn" and not externally_launched:
        return (
            " cannot run inside a local `-m` sweep: each DDP child process re-runs the whole sweep; "
            "expected trainer.devices=1, trainer.strategy=ddp_spawn, or hydra/launcher=slurm / local (one task per device)"
        )
    return None


def torch_device(value: Any, launch: Launch) -> str | None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:<n>`` or ``mps``, present on this machine."""
    text = str(value)
    kind, _, index = text.partition(":")
    if text == "auto" or text == "cpu":
        return None
    if kind == "cuda" and (not index or index.isdigit()):
        have = _cuda_count()
        if have == 0:
            return " but this machine has no CUDA GPU; expected auto or cpu"
        if index and int(index) >= have:
            return f" but this machine has {have} CUDA device(s); expected cuda:0 ... cuda:{have - 1}"
        return None
    if text == "mps":
        return None if _mps() else " but this machine has no MPS device; expected auto or cpu"
    return "expected auto, cpu, cuda, cuda:<n> or mps"


# -- eval and predict ---------------------------------------------------------------------------


def set_names(value: Any, launch: Launch) -> str | None:
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return None
    hint = f", e.g. sets=[{value}]" if isinstance(value, str) and value else ", e.g. sets=[Set5,Set14]"
    return f"expected a list of benchmark set names{hint}"


def one_weight_source(value: Any, launch: Launch) -> str | None:
    if value and launch.get("weights"):
        return (
            " and weights= both given; expected either ckpt=<lit-sisr checkpoint> or weights=<authors' file>, not both"
        )
    return None


def weights_needed(value: Any, launch: Launch) -> str | None:
    """A network with parameters needs ckpt= or weights= (bicubic has none)."""
    if launch.get("ckpt") or launch.get("weights") or launch.get("model.name") == "bicubic":
        return None
    import hydra

    from lit_sisr.backbones import count_parameters

    if count_parameters(hydra.utils.instantiate(launch.cfg.model)) == 0:
        return None
    return " has parameters: expected ckpt=<lit-sisr checkpoint> or weights=<authors' file>"


def required(what: str) -> Callable[[Any, Launch], str | None]:
    return lambda value, launch: None if value else f"expected {what} (required)"


def existing_input(value: Any, launch: Launch) -> str | None:
    if not value:
        return "expected an image file or a folder of images (required)"
    return (
        None if Path(str(value)).exists() else ": no such file or folder; expected an image file or a folder of images"
    )


def _model_from_options(launch: Launch) -> bool:
    """eval.py with ckpt=: model, attention and scale come from the checkpoint, not the options."""
    return not (launch.task == "eval" and launch.get("ckpt"))


# -- the table ----------------------------------------------------------------------------------

CHECKS: tuple[Check, ...] = (
    Check(
        "model.name",
        ("train", "eval"),
        "a registered network (conf/model/*.yaml)",
        "imdnn",
        known_model,
        _model_from_options,
        label="model",
    ),
    Check(
        "attention.name",
        ("train", "eval"),
        "a registered attention module, or original",
        "bma",
        known_attention,
        _model_from_options,
        label="attention",
    ),
    Check(
        "scale",
        ("train", "eval"),
        "an integer among the model's scales (2, 3, 4 for most)",
        "5",
        supported_scale,
        _model_from_options,
    ),
    Check("protocol", ("train", "eval"), "standard or bam_paper (src/lit_sisr/protocols.py)", "bam", known_protocol),
    Check("data.batch_size", ("train",), "an integer >= 1", "0", int_at_least(1)),
    Check("data.patch_size", ("train",), "an integer >= 1 (LR pixels)", "0", int_at_least(1)),
    Check("data.repeat", ("train",), "an integer >= 1", "0", int_at_least(1)),
    Check("data.num_workers", ("train",), "an integer >= 0", "-1", int_at_least(0)),
    Check("optimizer.lr", ("train",), "a number >= 0", "-1", non_negative_number),
    Check(
        "trainer.max_epochs", ("train",), "an integer >= 1, or -1 (until trainer.max_steps)", "0", int_at_least(1, -1)
    ),
    Check("trainer.max_steps", ("train",), "an integer >= 1, or -1 (no limit)", "0", int_at_least(1, -1)),
    Check("trainer.num_nodes", ("train",), "an integer >= 1", "0", int_at_least(1)),
    Check(
        "trainer.accelerator",
        ("train",),
        "auto, cpu, gpu (cuda) or mps, present on this machine",
        "tpu",
        accelerator_present,
    ),
    Check(
        "trainer.devices",
        ("train",),
        "an integer >= 1, -1 or auto, at most the devices present and the images of the smallest "
        "validation/test set (one per DDP process)",
        "0",
        devices_present,
    ),
    Check(
        "trainer.strategy",
        ("train",),
        "not a DDP strategy started by Lightning inside a local -m sweep",
        "ddp",
        sweepable_strategy,
        lambda launch: launch.multirun,
    ),
    Check(
        "paths.log_dir",
        TASKS[:2],
        "a folder path (nothing on it, or above it, is a regular file)",
        "<file>/logs",
        folder_path,
    ),
    Check(
        "device",
        ("eval", "predict"),
        "auto, cpu, cuda, cuda:<n> or mps, present on this machine",
        "cuda:99",
        torch_device,
    ),
    Check("sets", ("eval",), "a list of benchmark set names, e.g. sets=[Set5] or sets=[Set5,Set14]", "Set5", set_names),
    Check(
        "ckpt",
        ("eval",),
        "either ckpt=<lit-sisr checkpoint> or weights=<authors' file>, not both",
        "a.ckpt",
        one_weight_source,
        needs=("weights=b.pth",),
    ),
    Check(
        "model.name",
        ("eval",),
        "ckpt= or weights= for a network with parameters (none for bicubic)",
        "imdn",
        weights_needed,
        lambda launch: not launch.get("ckpt") and not launch.get("weights"),
        needs=("model=imdn",),
        label="model",
    ),
    Check("self_ensemble", ("eval", "predict"), "true or false", "maybe", boolean),
    Check(
        "tile",
        ("eval", "predict"),
        "an integer >= 1 (LR pixels), or null (whole images)",
        "0",
        optional(int_at_least(1)),
    ),
    Check(
        "tile_overlap",
        ("eval", "predict"),
        "an integer >= 0 (LR pixels), or null (the receptive radius)",
        "-1",
        optional(int_at_least(0)),
    ),
    Check("tile_exact", ("eval", "predict"), "true or false", "maybe", boolean),
    Check("input", ("predict",), "an image file or a folder of images that exists", "nowhere.png", existing_input),
    Check(
        "output",
        ("predict",),
        "a folder path (nothing on it, or above it, is a regular file)",
        "<file>/out",
        lambda value, launch: folder_path(value, launch) if value else "expected a folder for the results (required)",
    ),
)

RUN_OPTIONS = ("model.name", "attention.name", "scale", "protocol")


def check_config(cfg: DictConfig, task: str, multirun: bool = False, options: tuple[str, ...] | None = None) -> None:
    """Raise :class:`ConfigError` with the first failed row of :data:`CHECKS` for ``task``
    (only the rows of ``options`` when given)."""
    launch = Launch(cfg, task, multirun)
    for row in CHECKS:
        if task in row.tasks and (options is None or row.option in options):
            message = row.message(launch)
            if message is not None:
                raise ConfigError(message)


def check_run_config(cfg: DictConfig, task: str = "train") -> None:
    """The network rows only (model, attention, scale, protocol): for a configuration that names its
    network by options (an authors' weight file in ``predict.py`` or ``eval.py``)."""
    check_config(cfg, "train" if task == "predict" else task, options=RUN_OPTIONS)


def check_eval_config(cfg: DictConfig) -> None:
    """``eval.py``'s rows."""
    check_config(cfg, "eval")


class CheckBeforeLaunch(Callback):
    """Hydra callback (``hydra.callbacks.checks`` in conf/): check a single run's options after Hydra
    composed them and before it creates the run folder or writes anything. A user error is reported
    in one line (exit status 2, :func:`lit_sisr.cli_errors.report`): Hydra would turn an exception
    raised by a callback into a warning, so this one exits."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from lit_sisr.cli_errors import report_user_errors

        with report_user_errors():
            check_config(config, str(config.task_name))


DOC_BEGIN = "<!-- option checks: generated from lit_sisr.config_checks.CHECKS (python -m lit_sisr.config_checks) -->"
DOC_END = "<!-- end of option checks -->"


def markdown_table() -> str:
    """docs/errors.md's table of option checks, from :data:`CHECKS` (tests/test_config_checks.py
    fails when the two differ; ``python -m lit_sisr.config_checks`` prints it)."""
    lines = [DOC_BEGIN, "", "| option | checked for | accepted | wrong, e.g. |", "|---|---|---|---|"]
    for row in CHECKS:
        example = " ".join(f"`{o}`" for o in (*row.needs, f"{row.option}={row.bad}"))
        lines.append(f"| `{row.label or row.option}` | {', '.join(row.tasks)} | {row.accepted} | {example} |")
    return "\n".join([*lines, "", DOC_END])


if __name__ == "__main__":
    print(markdown_table())
