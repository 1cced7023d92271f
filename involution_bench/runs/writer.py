"""The one writer of a run folder: every file that goes into one goes through here.

`RunFolder` writes any of a run's files by name (config, evaluation, figures,
models, TensorBoard's folder). `RunWriter` is the training loop's side of
it: after each epoch the loop saves a checkpoint, then calls `record_epoch`,
which rewrites history and summary, so a run killed at any moment keeps
every finished epoch. `place_model` and `mark` end a run, the status last.
It knows nothing of TensorFlow: it is handed numbers, figures as PNG bytes,
and functions that save a model.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from involution_bench.runs.files import (
    BEST_MODEL_FILE,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    TENSORBOARD_DIR,
    checkpoint_name,
)
from involution_bench.runs.storage import save_atomic, write_atomic
from involution_bench.runs.summary import HISTORY_KEYS, RunStatus, RunSummary, epoch_statistics
from involution_bench.system.provenance import now_iso

ModelSaver = Callable[[Path], None]  # writes the model to the path it is given


class RunFolder:
    """A run folder's files, each written whole (a temporary name, then a rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def file(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        write_atomic(self.file(name), text)
        return self.file(name)

    def write_bytes(self, name: str, data: bytes) -> Path:
        write_atomic(self.file(name), data)
        return self.file(name)

    def write_json(self, name: str, payload: Any) -> Path:
        return self.write_text(name, json.dumps(payload, indent=2) + "\n")

    def save_model(self, name: str, save: ModelSaver) -> Path:
        save_atomic(self.file(name), save, suffix=".keras")  # Keras insists on .keras
        return self.file(name)

    def tensorboard_dir(self) -> Path:
        """TensorBoard's event files; its writers append to them (a resumed run too)."""
        folder = self.file(TENSORBOARD_DIR)
        folder.mkdir(exist_ok=True)
        return folder


class RunWriter:
    """The training loop's writer: config, checkpoints, best model, summary and history."""

    def __init__(
        self,
        run_dir: Path,
        summary: RunSummary,
        train_images: int,
        history: Mapping[str, list[float]] | None = None,
    ) -> None:
        self.folder = RunFolder(run_dir)
        self.run_dir = run_dir
        self.summary = summary
        self.train_images = train_images
        self.history = {key: list((history or {}).get(key, [])) for key in HISTORY_KEYS}

    @property
    def epochs_done(self) -> int:
        return len(self.history["val_accuracy"])

    def write_config(self, text: str) -> None:
        self.folder.write_text(CONFIG_FILE, text)

    def save_checkpoint(self, epoch: int, save: ModelSaver) -> Path:
        return self.folder.save_model(checkpoint_name(epoch), save)

    def keep_as_best(self, checkpoint: Path) -> None:
        """`best.keras` as a copy of the checkpoint just saved: the same model and
        optimizer state, for a file copy instead of a second save."""
        self.folder.save_model(
            BEST_MODEL_FILE, lambda path: path.write_bytes(checkpoint.read_bytes())
        )

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
        self.folder.file(checkpoint_name(self.epochs_done - 1)).unlink(missing_ok=True)

    def save(self) -> None:
        self.folder.write_json(HISTORY_FILE, self.history)
        self.folder.write_json(SUMMARY_FILE, self.summary.to_dict())

    def place_model(self, status: RunStatus, save: ModelSaver) -> None:
        """Put the final model in `model.keras`: a completed run's last checkpoint is that
        model already; a stopped one saves its newest weights (it may stop mid-epoch)."""
        last = self.folder.file(checkpoint_name(self.epochs_done))
        if status == RunStatus.completed and last.is_file():
            last.replace(self.folder.file(MODEL_FILE))
        else:
            self.folder.save_model(MODEL_FILE, save)

    def mark(self, status: RunStatus, error: str | None = None) -> None:
        """The final status, written last; a completed run needs no checkpoints any more."""
        self.summary.status = status
        self.summary.finished_at = now_iso()
        if error is not None:
            self.summary.error = error
        self.save()
        if status == RunStatus.completed:
            shutil.rmtree(self.folder.file(CHECKPOINTS_DIR), ignore_errors=True)
