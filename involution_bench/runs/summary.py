"""`summary.json` and `history.json`: their fields, declared once, and a run's status.

What a run has not produced yet is None. Keys this version does not know
(written by a newer invbench) are kept as they are, so rewriting a summary
never drops them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict


class RunStatus(str, Enum):
    """Where a run stands. `died` and `unreadable` are never written: `died` is what a
    `running` run whose process is gone reads as, and `unreadable` a folder whose
    summary cannot be read."""

    running = "running"
    completed = "completed"
    failed = "failed"
    interrupted = "interrupted"
    died = "died"
    unreadable = "unreadable"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "train_seconds")


class RunSummary(BaseModel):
    """`summary.json`, field by field."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    name: str
    seed: int | None = None
    status: RunStatus = RunStatus.running
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
    dataset: str | None = None  # data.name
    train_images: int | None = None
    test_images: int | None = None
    data_source: str | None = None
    # What the run chose on: "split" (held out of the training images), "val/" (a
    # folder dataset's own) or "test" (the source article's protocol). Runs written
    # before validation splits existed have None: they validated on test.
    validation: str | None = None
    validation_images: int | None = None
    # The test set, evaluated once at completion: the chosen model (`test_model`,
    # best.keras where kept) and the last one.
    test_accuracy: float | None = None
    test_loss: float | None = None
    test_model: str | None = None
    test_accuracy_last: float | None = None
    test_loss_last: float | None = None
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
    def chosen_on_test(self) -> bool:
        """Whether its best epoch and best model were chosen on the test set."""
        return self.validation in (None, "test")

    @property
    def total_parameters(self) -> int | None:
        return (self.parameters or {}).get("total")

    @property
    def trainable_parameters(self) -> int | None:
        return (self.parameters or {}).get("trainable")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


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
