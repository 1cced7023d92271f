"""Reading run folders back: one run, or every run below a folder.

A folder whose `summary.json` cannot be read is still listed, as
`unreadable`, so that one damaged run never hides the others. Configs are
read with PyYAML's C loader where it is built: thousands of runs list in
seconds, not minutes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from involution_bench.config import SAFE_LOADER
from involution_bench.errors import RunError
from involution_bench.runs.files import CONFIG_FILE, HISTORY_FILE, SUMMARY_FILE
from involution_bench.runs.storage import read_json
from involution_bench.runs.summary import RunStatus, RunSummary


@dataclass(frozen=True)
class Run:
    """A run folder as read back from disk."""

    path: Path
    summary: RunSummary
    history: dict[str, list[float]]
    config: dict[str, Any] | None = None  # the resolved config.yaml, when readable
    problem: str | None = None  # why the folder could not be read: it is "unreadable"

    @property
    def name(self) -> str:
        return self.summary.name

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
        return len(self.history.get("val_accuracy", []))


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


def load_run(path: Path) -> Run:
    if not path.exists():
        raise RunError(str(path), "no such folder")
    if not is_run_dir(path):
        raise RunError(str(path), f"not a run folder (no {SUMMARY_FILE})")
    summary = read_json(path / SUMMARY_FILE)
    history_path = path / HISTORY_FILE
    history = read_json(history_path) if history_path.is_file() else {}
    if not isinstance(summary, dict) or not isinstance(history, dict):
        raise RunError(str(path), "summary.json and history.json must hold JSON objects")
    try:
        typed = RunSummary.model_validate({"name": path.name, **summary})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise RunError(str(path / SUMMARY_FILE), f"{key}: {error['msg'].lower()}") from None
    return Run(path, typed, history, _read_config(path / CONFIG_FILE))


def read_run(path: Path) -> Run:
    """`load_run`, except that a damaged run comes back as an `unreadable` Run saying why."""
    try:
        return load_run(path)
    except RunError as exc:
        if not is_run_dir(path):
            raise
        # The reason names the damaged file within the folder, not the folder again.
        where = Path(exc.where)
        inside = where != path and where.is_relative_to(path)
        problem = f"{where.relative_to(path)}: {exc.problem}" if inside else exc.problem
        summary = RunSummary(name=path.name, status=RunStatus.unreadable)
        return Run(path, summary, {}, _read_config(path / CONFIG_FILE), problem=problem)


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
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
