"""How the command lines end on a user error: one line, exit status 2, no half-made run folder.

``train.py``, ``eval.py`` and ``predict.py`` call :func:`run_cli`, which reports a
:class:`lit_sisr.errors.UserError` anywhere in an exception's chain (and Hydra's own
configuration errors) as a single line ``error: <message>`` on stderr with exit status 2, while
a real bug keeps its traceback. ``HYDRA_FULL_ERROR=1`` or ``LIT_SISR_DEBUG=1`` shows the traceback
of every error. docs/errors.md lists every case and its message; the option checks themselves
are the table in :mod:`lit_sisr.config_checks`.
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from lit_sisr.errors import UserError
from lit_sisr.outputs import CHECKPOINTS_DIR, DONE_FILE, RESULTS_FILE, SUMMARY_FILE

EXIT_USER_ERROR = 2
# What makes a run folder worth keeping after a failure: anything a finished or resumable run wrote.
RESULTS = (CHECKPOINTS_DIR, DONE_FILE, RESULTS_FILE, SUMMARY_FILE)


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


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug (keep the traceback).

    A :class:`UserError` anywhere in the chain (e.g. raised inside a constructor Hydra called) is
    reported with its own message. Hydra's errors carry no structured fields, so two of them are
    read from their text: a config that cannot be composed (unknown ``model=`` choice, bad
    override: Hydra's message, put on one line), and a wrong keyword or value given to a
    ``_target_`` (the constructor's TypeError/ValueError, with the config key Hydra names)."""
    from hydra.errors import ConfigCompositionException, InstantiationException, OverrideParseException

    for err in _chain(exc):
        if isinstance(err, UserError):
            return one_line(str(err))
    if isinstance(exc, (ConfigCompositionException, OverrideParseException)):
        return one_line(
            str(exc).replace("\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.", "")
        )
    if isinstance(exc, InstantiationException):
        text = str(exc)
        key = text.rsplit("full_key: ", 1)[1].strip() if "full_key: " in text else None
        root = list(_chain(exc))[-1]
        if text.startswith("Error locating target"):
            return one_line(text.split(", set env var")[0]) + (f" (in {key})" if key else "")
        if isinstance(root, (ValueError, TypeError)) and root is not exc:
            return one_line(str(root)) + (f" (while building {key})" if key else "")
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


@contextmanager
def report_user_errors() -> Iterator[None]:
    """Report a user error raised inside in one line and exit 2 (with its traceback first when
    debugging); a bug propagates. For code that runs where an exception would not reach
    :func:`run_cli` (a Hydra callback)."""
    try:
        yield
    except Exception as exc:
        message = user_error_message(exc)
        if message is None:
            raise
        if _debug():
            traceback.print_exc()
        report(message)


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
    return all(
        p.name == ".hydra" or (p.suffix == ".log" and p.is_file() and p.stat().st_size == 0)
        for p in output_dir.iterdir()
    )


def holds_results(output_dir: Path) -> bool:
    return any((output_dir / name).exists() for name in RESULTS)


@contextmanager
def guard_run_folder(output_dir: str | Path | None, exit_on_user_error: bool = False) -> Iterator[None]:
    """Wrap a Hydra task. On a user error (:func:`user_error_message` is not None) that stops the run
    before it wrote any result, remove the run folder Hydra created for this launch (``output_dir``;
    None: the task has no run folder); a folder that held anything before (an earlier run,
    checkpoints) is never removed, nor one after a bug (its log helps the bug report). With
    ``exit_on_user_error`` (single runs), the error is then reported in one line and the process
    exits with status 2 (raising SystemExit, which Hydra lets through without adding its "Error
    executing job" line); in a multirun it propagates, so the other jobs still run and Hydra names
    the failed job."""
    output_dir = Path(output_dir) if output_dir is not None else None
    fresh = output_dir is not None and is_fresh_run_folder(output_dir)
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
