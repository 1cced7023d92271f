"""Run folders: naming, atomic writes, status, and reading runs back.

A run folder is `<root>/<YYYYmmdd-HHMMSS>-<name>[-N]/`. Every file in it is
written to a temporary name and renamed into place, so a reader never sees a
half-written file, and `summary.json`'s status is set to `completed` last.

One process at a time trains a run folder: it holds an OS lock (`flock`) on
the folder's `.lock` file, which the OS drops when the process ends however
it ends, so a killed run never blocks its own resume.

A folder whose `summary.json` cannot be read is still listed, as
`unreadable`, so that one damaged run never hides the others.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from involution_bench.errors import RunError

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.json"
MODEL_FILE = "model.keras"
CHECKPOINTS_DIR = "checkpoints"
LOCK_FILE = ".lock"
# Never written: "died" is what a "running" run whose process is gone reads as,
# and "unreadable" a folder whose summary cannot be read.
STATUSES = ("running", "completed", "failed", "interrupted", "died", "unreadable")
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "train_seconds")


def ensure_root(root: Path) -> Path:
    """Create the output root, or explain why it cannot be used."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(str(root), f"cannot create the output folder ({exc.strerror})") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise RunError(str(root), "output folder is not writable")
    return root


def timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now()).strftime("%Y%m%d-%H%M%S")


def create_run_dir(root: Path, name: str, now: datetime | None = None) -> Path:
    """A new, empty run folder; never reuses an existing one, even within the same second."""
    return create_unique_dir(root, f"{timestamp(now)}-{name}")


def create_unique_dir(root: Path, stem: str) -> Path:
    """`root/stem`, or `root/stem-2`, `-3`, ... when taken: a new folder, created here."""
    ensure_root(root)
    attempt = 1
    while True:
        suffix = "" if attempt == 1 else f"-{attempt}"
        candidate = root / f"{stem}{suffix}"
        try:
            candidate.mkdir()
        except FileExistsError:
            attempt += 1
            continue
        except OSError as exc:
            raise RunError(str(candidate), f"cannot create folder ({exc.strerror})") from None
        return candidate


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write to a temporary sibling, flush it to disk, then rename over `path`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_json(path: Path, payload: Any) -> None:
    write_atomic(path, json.dumps(payload, indent=2) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(str(path), f"cannot be read ({exc})") from None


@dataclass(frozen=True)
class Run:
    """A run folder as read back from disk."""

    path: Path
    summary: dict[str, Any]
    history: dict[str, list[float]]
    config: dict[str, Any] | None = None  # the resolved config.yaml, when readable
    problem: str | None = None  # why the folder could not be read: it is "unreadable"

    @property
    def name(self) -> str:
        return self.summary.get("name", self.path.name)

    @property
    def status(self) -> str:
        """The recorded status, except that a run whose process has died reads "died"."""
        if self.problem:
            return "unreadable"
        status = self.summary.get("status", "unknown")
        pid, host = self.summary.get("pid"), self.summary.get("host")
        if status == "running" and host == socket.gethostname() and not process_alive(pid):
            return "died"
        return status

    @property
    def epochs_done(self) -> int:
        return len(self.history.get("val_accuracy", []))


def checkpoint_path(run_dir: Path, epoch: int) -> Path:
    """The model and optimizer state saved at the end of `epoch` (1-based)."""
    return run_dir / CHECKPOINTS_DIR / f"epoch-{epoch:04d}.keras"


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
    return Run(path, summary, history, _read_config(path / CONFIG_FILE))


def read_run(path: Path) -> Run:
    """`load_run`, except that a damaged run comes back as an `unreadable` Run saying why."""
    try:
        return load_run(path)
    except RunError as exc:
        if not is_run_dir(path):
            raise
        return Run(path, {}, {}, _read_config(path / CONFIG_FILE), problem=exc.problem)


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
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


class RunLock:
    """The exclusive right to write a run folder, held by one process at a time.

    `flock` locks belong to the open file and vanish when the process exits,
    even by SIGKILL, so a stale lock cannot block anyone. The lock file names
    its holder, so a refusal can say which process to wait for, and it is
    removed on release, so a finished run folder holds only its results.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._handle = None

    def acquire(self) -> RunLock:
        while True:
            try:
                handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                where = str(self.path.parent)
                raise RunError(where, f"cannot be locked ({exc.strerror})") from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(handle)
                handle.close()
                raise RunError(
                    str(self.path.parent),
                    f"is being trained by {holder}; wait for it or stop it first",
                ) from None
            # A holder that released meanwhile removed the file we locked: lock the new one.
            if self._same_file(handle):
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle
        return self

    def _same_file(self, handle) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)  # before closing: nobody can lock it after
            self._handle.close()  # closing the file drops the lock
            self._handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _lock_holder(handle, patience_s: float = 2.0) -> str:
    """Who holds the lock, as the holder wrote it; it writes just after locking,
    so a lock taken a moment ago may need a moment more to name its process."""
    deadline = time.monotonic() + patience_s
    while True:
        handle.seek(0)
        holder = handle.read().strip()
        if holder or time.monotonic() > deadline:
            return holder or "another process"
        time.sleep(0.05)
