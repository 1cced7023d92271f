"""Run folders: naming, the lock, atomic writes, the summary's schema, its writer and reader.

This module owns the run folder: `RunSummary` declares every field of
`summary.json` once, `RunWriter` is the only code that writes a run's
summary and history, and `load_run` is the one reader. It knows nothing of
TensorFlow: the training loop hands it numbers and a function that saves
the model.

A run folder is `<root>/<YYYYmmdd-HHMMSS>-<name>[-N]/`. Every file in it is
written to a temporary name and renamed into place, so a reader never sees a
half-written file, and `summary.json`'s status is set to `completed` last.

One process at a time trains a run folder: it holds the folder's lock
(`run_lock.RunLock`). Provenance (versions, CPU, git commit, command line)
comes from `provenance.py`.

A folder whose `summary.json` cannot be read is still listed, as
`unreadable`, so that one damaged run never hides the others.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from involution_bench.errors import RunError
from involution_bench.provenance import now_iso

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.json"
MODEL_FILE = "model.keras"
BEST_MODEL_FILE = "best.keras"
CHECKPOINTS_DIR = "checkpoints"
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


class RunSummary(BaseModel):
    """`summary.json`, field by field. What a run has not produced yet is None.

    Keys this version does not know (written by a newer invbench) are kept
    as they are, so rewriting a summary never drops them.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    name: str
    seed: int | None = None
    status: str = "running"
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    error: str | None = None  # why a failed run failed
    resumed: list[dict[str, Any]] = []  # {at, from_epoch} per resume
    pid: int | None = None  # who trains it, so a dead process reads "died"
    host: str | None = None
    # The model
    parameters: dict[str, int] | None = None  # total, trainable, non_trainable
    macs_per_image: int | None = None
    layers: list[dict[str, Any]] = []  # name, kind, output_shape, parameters, macs
    involution_op: str | None = None
    jit_compile: bool | None = None
    precision: str | None = None
    distribute: dict[str, Any] | None = None  # strategy, devices, replicas
    global_batch_size: int | None = None
    # The data
    train_images: int | None = None
    test_images: int | None = None
    data_source: str | None = None
    # Progress and results, rewritten every epoch
    epochs_planned: int | None = None
    epochs_done: int = 0
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    final_val_accuracy: float | None = None
    final_val_loss: float | None = None
    final_accuracy: float | None = None
    seconds_per_epoch: float | None = None
    images_per_second: float | None = None
    stopped_early: dict[str, Any] | None = None  # {epoch, reason} when early stopping ended it
    # Provenance: see `environment_info`
    environment: dict[str, Any] = {}

    @property
    def total_parameters(self) -> int | None:
        return (self.parameters or {}).get("total")

    @property
    def trainable_parameters(self) -> int | None:
        return (self.parameters or {}).get("trainable")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


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
    def status(self) -> str:
        """The recorded status, except that a run whose process has died reads "died"."""
        if self.problem:
            return "unreadable"
        summary = self.summary
        local = summary.host == socket.gethostname()
        if summary.status == "running" and local and not process_alive(summary.pid):
            return "died"
        return summary.status

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
        summary = RunSummary(name=path.name, status="unreadable")
        return Run(path, summary, {}, _read_config(path / CONFIG_FILE), problem=problem)


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


# ---- writing a run ----


def epoch_statistics(history: Mapping[str, list[float]], train_images: int) -> dict[str, Any]:
    """The summary's result fields, from the history so far."""
    val_accuracy = history["val_accuracy"]
    best = max(range(len(val_accuracy)), key=val_accuracy.__getitem__)
    return {
        "epochs_done": len(val_accuracy),
        "best_val_accuracy": val_accuracy[best],
        "best_epoch": best + 1,
        "final_val_accuracy": val_accuracy[-1],
        "final_val_loss": history["val_loss"][-1],
        "final_accuracy": history["accuracy"][-1],
        "seconds_per_epoch": sum(history["epoch_seconds"]) / len(val_accuracy),
        "images_per_second": train_images * len(val_accuracy) / sum(history["train_seconds"]),
    }


class RunWriter:
    """The one writer of a run folder's summary, history and final model.

    After each epoch the training loop saves a checkpoint, then calls
    `record_epoch`, which rewrites history and summary: a run killed at any
    moment keeps every finished epoch. `place_model` and `mark` end a run.
    """

    def __init__(
        self,
        run_dir: Path,
        summary: RunSummary,
        train_images: int,
        history: Mapping[str, list[float]] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.summary = summary
        self.train_images = train_images
        self.history = {key: list((history or {}).get(key, [])) for key in HISTORY_KEYS}

    @property
    def epochs_done(self) -> int:
        return len(self.history["val_accuracy"])

    def record_epoch(
        self, metrics: Mapping[str, float], epoch_seconds: float, train_seconds: float
    ) -> None:
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            self.history[key].append(float(metrics[key]))
        self.history["epoch_seconds"].append(epoch_seconds)
        self.history["train_seconds"].append(train_seconds)
        for key, value in epoch_statistics(self.history, self.train_images).items():
            setattr(self.summary, key, value)
        self.summary.updated_at = now_iso()
        self.save()
        # The previous epoch's checkpoint is superseded by this one's.
        checkpoint_path(self.run_dir, self.epochs_done - 1).unlink(missing_ok=True)

    def save(self) -> None:
        write_json(self.run_dir / HISTORY_FILE, self.history)
        write_json(self.run_dir / SUMMARY_FILE, self.summary.to_dict())

    def place_model(self, status: str, save_model: Callable[[Path], None]) -> None:
        """Put the final model in `model.keras`: a completed run's last checkpoint is that
        model already; a stopped one saves its newest weights (it may stop mid-epoch)."""
        last = checkpoint_path(self.run_dir, self.epochs_done)
        if status == "completed" and last.is_file():
            last.replace(self.run_dir / MODEL_FILE)
        else:
            save_model(self.run_dir / MODEL_FILE)

    def mark(self, status: str, error: str | None = None) -> None:
        """The final status, written last; a completed run needs no checkpoints any more."""
        self.summary.status = status
        self.summary.finished_at = now_iso()
        if error is not None:
            self.summary.error = error
        self.save()
        if status == "completed":
            shutil.rmtree(self.run_dir / CHECKPOINTS_DIR, ignore_errors=True)
