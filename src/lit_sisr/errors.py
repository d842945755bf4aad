"""The errors a user can cause: every one derives from :class:`UserError`.

The command lines (:mod:`lit_sisr.cli_errors`) report a :class:`UserError` anywhere in an
exception's chain as one line ``error: <message>`` with exit status 2; anything else is a bug and
keeps its traceback. The message of a user error names the file or option and what was expected
(docs/errors.md lists every case).
"""

from __future__ import annotations


class UserError(Exception):
    """Base class of every error a user can fix (a bad option, file, image or checkpoint)."""


class ConfigError(UserError, ValueError):
    """A configuration that cannot work; the message names the option, its value and what is accepted."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or the configuration points to) that does not exist."""
