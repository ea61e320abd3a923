"""Errors a user sees as one line: which file (and line, or config key) and what is wrong.

The CLI catches `GpError`, prints `str(error)` on one line to stderr and exits non-zero.
Anything else escaping is a bug, not a user error.
"""

from __future__ import annotations

from pathlib import Path


class GpError(Exception):
    """Base class for every error meant for the user; `str()` is a single line."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())  # never more than one line


class InputError(GpError):
    """A problem in an input file, located as `path:line[:column]: message`."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, column: int | None = None):
        self.path = str(path)
        self.line = line
        self.column = column
        self.message = message
        where = self.path
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # a Ray worker's error crosses to the driver pickled: keep every argument
        return type(self), (self.path, self.message, self.line, self.column)


class ConfigError(GpError):
    """A problem in the configuration, located by its source and dotted key path."""

    def __init__(self, source: str, key_path: str, message: str):
        self.source = source
        self.key_path = key_path
        self.message = message
        super().__init__(f"{source}: {key_path}: {message}" if key_path else f"{source}: {message}")

    def __reduce__(self):
        return type(self), (self.source, self.key_path, self.message)
