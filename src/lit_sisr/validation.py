"""Bad inputs: checks of a run's configuration, one-line error reports, and no half-made run folders.

``train.py`` and ``eval.py`` call :func:`run_cli`, which turns the project's known error types
(configuration, image, weight-file, download and missing-data errors, and Hydra's own
configuration errors) into a single line ``error: <message>`` on stderr and exit status 2,
while a real bug keeps its traceback. ``HYDRA_FULL_ERROR=1`` or ``LIT_SISR_DEBUG=1`` shows the
traceback of every error. docs/errors.md lists every case and its message.
"""
from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from omegaconf import DictConfig

from lit_sisr.outputs import CHECKPOINTS_DIR, DONE_FILE, RESULTS_FILE, SUMMARY_FILE

EXIT_USER_ERROR = 2
# What makes a run folder worth keeping after a failure: anything a finished or resumable run wrote.
RESULTS = (CHECKPOINTS_DIR, DONE_FILE, RESULTS_FILE, SUMMARY_FILE)


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the option."""


def check_run_config(cfg: DictConfig) -> None:
    """Refuse a model, attention, scale or protocol that cannot work, before anything is built:
    ``scale`` must be one of the scales the model's class declares (``scales``, see
    :mod:`lit_sisr.backbones`), ``protocol`` one of :data:`lit_sisr.protocols.PROTOCOLS`."""
    from lit_sisr.attention import attention_names, import_attention
    from lit_sisr.backbones import BACKBONES

    model = cfg.model.get("name") if cfg.get("model") is not None else None
    if model is not None and not cfg.model.get("class_path") and model not in BACKBONES:
        raise ConfigError(f"model={model} is unknown; expected one of: {', '.join(BACKBONES.names())}")
    attention = cfg.attention.get("name") if cfg.get("attention") is not None else None
    class_path = cfg.attention.get("class_path") if cfg.get("attention") is not None else None
    if class_path:  # the user's own module: it must import and take channels first
        try:
            import_attention(class_path)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    elif attention is not None and attention not in attention_names():
        raise ConfigError(f"attention={attention} is unknown; expected one of: {', '.join(attention_names())}")
    if model is not None and model in BACKBONES:
        scales = list(getattr(BACKBONES.get(model), "scales", (2, 3, 4)))
        scale = cfg.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, int):
            raise ConfigError(f"scale={scale}: expected an integer, one of: {', '.join(map(str, scales))}")
        if scale not in scales:
            raise ConfigError(
                f"scale={scale} is not supported by model={model}; expected one of: {', '.join(map(str, scales))}"
            )
    from lit_sisr.protocols import PROTOCOLS

    if cfg.get("protocol", "standard") not in PROTOCOLS:
        raise ConfigError(f"protocol={cfg.protocol} is unknown; expected one of: {', '.join(PROTOCOLS)}")


def check_eval_config(cfg: DictConfig) -> None:
    """``eval.py``: exactly one source of weights, unless the model has no parameters."""
    if cfg.get("ckpt") and cfg.get("weights"):
        raise ConfigError("give either ckpt=<lit-sisr checkpoint> or weights=<authors' file>, not both")
    if cfg.get("ckpt"):
        return  # model, attention and scale come from the checkpoint
    check_run_config(cfg)
    if not cfg.get("weights"):
        import hydra

        from lit_sisr.backbones import count_parameters

        if count_parameters(hydra.utils.instantiate(cfg.model)) > 0:
            raise ConfigError(
                f"model={cfg.model.name} has parameters: give ckpt=<lit-sisr checkpoint> or weights=<authors' file>"
            )


# ---------------------------------------------------------------------------------------------
# One-line reports


def _known_error_types() -> tuple[type[BaseException], ...]:
    """The project's user-error classes. Only modules already imported are looked at: an error of a
    class whose module was never imported cannot have been raised (and a config error stays fast)."""
    known: list[type[BaseException]] = [ConfigError, FileNotFoundError]
    for module, name in (("lit_sisr.data.io", "ImageError"), ("lit_sisr.weights", "WeightsError"),
                         ("lit_sisr.data.download", "DownloadError")):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            known.append(cls)
    return tuple(known)


def one_line(message: str) -> str:
    """A multi-line message on one line. Hydra's lists ("Available options in 'model':" followed by
    one indented option per line) become "Available options in 'model': awsrn, bicubic, ...";
    its "Config search path:" appendix is dropped."""
    parts: list[str] = []
    for raw in message.split("Config search path:")[0].splitlines():
        line = raw.strip()
        if not line:
            continue
        if raw[:1].isspace() and parts:  # an indented item of the list the previous line opened
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
        else:
            parts.append(line)
    return "; ".join(p.rstrip(".") for p in parts)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _message(exc: BaseException) -> str:
    # KeyError's str() adds quotes around its message.
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug (keep the traceback)."""
    from hydra.errors import ConfigCompositionException, InstantiationException, OverrideParseException

    known = _known_error_types()
    for err in _chain(exc):
        if isinstance(err, known):
            return one_line(_message(err))
    if isinstance(exc, (ConfigCompositionException, OverrideParseException)):
        return one_line(str(exc).replace("\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.", ""))
    if isinstance(exc, InstantiationException):
        text = str(exc)
        key = text.rsplit("full_key: ", 1)[1].strip() if "full_key: " in text else None
        root = list(_chain(exc))[-1]
        if text.startswith("Error locating target"):
            return one_line(text.split(", set env var")[0]) + (f" (in {key})" if key else "")
        if isinstance(root, (ValueError, KeyError, TypeError)) and root is not exc:
            return one_line(_message(root)) + (f" (while building {key})" if key else "")
    return None


def _debug() -> bool:
    """Show tracebacks of user errors too? ``LIT_SISR_DEBUG`` when set (run_cli always sets it, so
    that processes started by this one, e.g. DDP workers, inherit the user's choice), else
    ``HYDRA_FULL_ERROR``."""
    value = os.environ.get("LIT_SISR_DEBUG")
    if value is None:
        value = os.environ.get("HYDRA_FULL_ERROR", "")
    return value not in ("", "0")


def report(message: str) -> None:
    """Print a user error and end the process with :data:`EXIT_USER_ERROR`."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USER_ERROR)


def run_cli(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` function; report user errors in one line (exit 2), keep tracebacks of bugs.
    (Errors inside the task are reported by :func:`guard_run_folder`; this catches the ones Hydra
    raises before it, such as an unknown ``model=`` choice, and those of a multirun.)"""
    debug = _debug()
    os.environ["LIT_SISR_DEBUG"] = "1" if debug else "0"
    # Hydra prints errors itself unless HYDRA_FULL_ERROR is set: set it, so they reach us.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except Exception as exc:
        message = None if debug else user_error_message(exc)
        if message is None:
            raise
        report(message)


# ---------------------------------------------------------------------------------------------
# No half-made run folders


def is_fresh_run_folder(output_dir: Path) -> bool:
    """True when ``output_dir`` holds only what Hydra wrote for this launch (``.hydra/`` and an empty
    job log): no earlier run used it. Call it first thing in the task function."""
    if not output_dir.is_dir():
        return True
    return all(p.name == ".hydra" or (p.suffix == ".log" and p.is_file() and p.stat().st_size == 0)
               for p in output_dir.iterdir())


def holds_results(output_dir: Path) -> bool:
    return any((output_dir / name).exists() for name in RESULTS)


@contextmanager
def guard_run_folder(output_dir: str | Path, exit_on_user_error: bool = False) -> Iterator[None]:
    """Wrap a Hydra task. On a user error (:func:`user_error_message` is not None) that stops the run
    before it wrote any result, remove the run folder Hydra created for this launch; a folder that
    held anything before (an earlier run, checkpoints) is never removed, nor one after a bug (its
    log helps the bug report). With ``exit_on_user_error`` (single runs), the error is then
    reported in one line and the process exits with status 2 (raising SystemExit, which Hydra
    lets through without adding its "Error executing job" line); in a multirun it propagates, so
    the other jobs still run and Hydra names the failed job."""
    output_dir = Path(output_dir)
    fresh = is_fresh_run_folder(output_dir)
    try:
        yield
    except Exception as exc:
        message = user_error_message(exc)
        if message is None:
            raise
        if fresh and not holds_results(output_dir):
            shutil.rmtree(output_dir, ignore_errors=True)
        if exit_on_user_error and not _debug():
            report(message)
        raise
