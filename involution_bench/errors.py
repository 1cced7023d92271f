"""The one exception family the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class InvbenchError(Exception):
    """Bad input a person can fix: names where (file, key or path) and what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class ConfigError(InvbenchError):
    """A config file or `--set` override that cannot be used."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        super().__init__(f"{source}: {key}" if key else source, problem)
        self.source = source
        self.key = key


class DataError(InvbenchError):
    """A data folder or file that is missing, incomplete or corrupted."""


class RunError(InvbenchError):
    """A path that is not a usable run folder."""
