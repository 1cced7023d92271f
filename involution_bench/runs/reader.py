"""Reading run folders back: one run, or every run below a folder.

A folder whose `summary.json` cannot be read is still listed, as
`unreadable`, so that one damaged run never hides the others. Configs are
read with PyYAML's C loader where it is built: thousands of runs list in
seconds, not minutes.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from involution_bench.config import SAFE_LOADER
from involution_bench.errors import RunError
from involution_bench.runs.files import CONFIG_FILE, HISTORY_FILE, ROBUSTNESS_FILE, SUMMARY_FILE
from involution_bench.runs.storage import read_json
from involution_bench.runs.summary import RunStatus, RunSummary

_UNREAD: Any = object()  # a file not read yet: read on first use


@dataclass(frozen=True)
class Run:
    """A run folder as read back from disk.

    `summary.json` is read at once; `history.json` and `config.yaml` are read
    when first needed (or given), so that listing thousands of runs reads one
    small file each.
    """

    path: Path
    summary: RunSummary
    preloaded_history: dict[str, list[float]] | None = field(default=None, repr=False)
    preloaded_config: Any = field(default=_UNREAD, repr=False)
    problem: str | None = None  # why the folder could not be read: it is "unreadable"

    @property
    def name(self) -> str:
        return self.summary.name

    @functools.cached_property
    def history(self) -> dict[str, list[float]]:
        """Per-epoch curves; {} where the file is missing or damaged."""
        if self.preloaded_history is not None:
            return self.preloaded_history
        try:
            return _read_history(self.path)
        except RunError:
            return {}

    @functools.cached_property
    def config_text(self) -> str | None:
        """`config.yaml` as written, or None where it cannot be read."""
        try:
            return (self.path / CONFIG_FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    @functools.cached_property
    def config(self) -> dict[str, Any] | None:
        """The resolved config.yaml, when readable."""
        if self.preloaded_config is not _UNREAD:
            return self.preloaded_config
        return _parse_config(self.config_text)

    @functools.cached_property
    def robustness(self) -> dict[str, Any] | None:
        """`robustness.json` (invbench robustness), read once; None where there is none."""
        path = self.path / ROBUSTNESS_FILE
        if not path.is_file():
            return None
        try:
            report = read_json(path)
        except RunError:  # a torn or foreign file counts as none
            return None
        return report if isinstance(report, dict) else None

    @property
    def status(self) -> RunStatus:
        """The recorded status, except that a run whose process has died reads "died"."""
        if self.problem:
            return RunStatus.unreadable
        summary = self.summary
        local = summary.host == socket.gethostname()
        if summary.status == RunStatus.running and local and not process_alive(summary.pid):
            return RunStatus.died
        return summary.status

    @property
    def epochs_done(self) -> int:
        """Finished epochs: the history's, or the summary's where the history is unread."""
        if "history" in self.__dict__ or self.preloaded_history is not None:
            return len(self.history.get("val_accuracy", []))
        return self.summary.epochs_done


def process_alive(pid: Any) -> bool:
    """Whether a process with this id exists on this machine (True when unsure)."""
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    return True


def is_run_dir(path: Path) -> bool:
    return (path / SUMMARY_FILE).is_file()


def load_run(path: Path, history: bool = True) -> Run:
    """The run at `path`; its history read now (and checked) unless `history` is False."""
    if not path.exists():
        raise RunError(str(path), "no such folder")
    if not is_run_dir(path):
        raise RunError(str(path), f"not a run folder (no {SUMMARY_FILE})")
    summary = read_json(path / SUMMARY_FILE)
    if not isinstance(summary, dict):
        raise RunError(str(path), "summary.json must hold a JSON object")
    curves = _read_history(path) if history else None
    try:
        typed = RunSummary.model_validate({"name": path.name, **summary})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise RunError(str(path / SUMMARY_FILE), f"{key}: {error['msg'].lower()}") from None
    return Run(path, typed, curves)


def read_run(path: Path, history: bool = True) -> Run:
    """`load_run`, except that a damaged run comes back as an `unreadable` Run saying why."""
    try:
        return load_run(path, history)
    except RunError as exc:
        if not is_run_dir(path):
            raise
        # The reason names the damaged file within the folder, not the folder again.
        where = Path(exc.where)
        inside = where != path and where.is_relative_to(path)
        problem = f"{where.relative_to(path)}: {exc.problem}" if inside else exc.problem
        summary = RunSummary(name=path.name, status=RunStatus.unreadable)
        return Run(path, summary, {}, problem=problem)


def _read_history(path: Path) -> dict[str, list[float]]:
    history_path = path / HISTORY_FILE
    history = read_json(history_path) if history_path.is_file() else {}
    if not isinstance(history, dict):
        raise RunError(str(history_path), "must hold a JSON object")
    return history


def _parse_config(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        config = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        return None
    return config if isinstance(config, dict) else None


def find_runs(root: Path) -> list[Path]:
    """Run folders at or below `root`, oldest first."""
    if is_run_dir(root):
        return [root]
    if not root.is_dir():
        raise RunError(str(root), "no such folder")
    found = [summary.parent for summary in root.rglob(SUMMARY_FILE)]
    return sorted(found, key=lambda path: (path.name[:15], str(path)))


def newest_run(root: Path) -> Path:
    runs = find_runs(root)
    if not runs:
        raise RunError(str(root), "holds no runs yet; train one with `invbench train`")
    return runs[-1]
