"""What a person sees while a run trains: a live Rich display, or plain lines for logs."""

from __future__ import annotations

import keras
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    return (
        f"epoch {epoch}/{epochs}  loss {logs['loss']:.4f}  accuracy {logs['accuracy']:.4f}  "
        f"val_loss {logs['val_loss']:.4f}  val_accuracy {logs['val_accuracy']:.4f}"
    )


class EpochLines(keras.callbacks.Callback):
    """One plain line per epoch: for CI logs and `--quiet`."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def on_epoch_end(self, epoch, logs=None):
        self.console.print(epoch_line(epoch + 1, self.params["epochs"], logs), highlight=False)


class LiveProgress(keras.callbacks.Callback):
    """Bars for the run and the current epoch, with the running loss and accuracy."""

    def __init__(self, console: Console, title: str) -> None:
        super().__init__()
        self.console = console
        self.title = title
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=console,
            transient=True,
        )

    def on_train_begin(self, logs=None):
        self.progress.start()
        self.run_task = self.progress.add_task(self.title, total=self.params["epochs"], metrics="")
        self.epoch_task = self.progress.add_task(
            "epoch", total=self.params.get("steps"), metrics=""
        )

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_label = f"epoch {epoch + 1}"
        self.progress.reset(
            self.epoch_task,
            description=self.epoch_label,
            metrics="",
            total=self.params.get("steps"),
        )

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        metrics = f"loss {logs.get('loss', 0):.4f}  acc {logs.get('accuracy', 0):.4f}"
        self.progress.update(self.epoch_task, completed=batch + 1, metrics=metrics)

    def on_test_begin(self, logs=None):
        self.progress.update(self.epoch_task, description=f"{self.epoch_label} validating")

    def on_epoch_end(self, epoch, logs=None):
        self.progress.advance(self.run_task)
        self.progress.update(self.run_task, metrics=f"val_acc {logs['val_accuracy']:.4f}")
        self.progress.console.print(
            epoch_line(epoch + 1, self.params["epochs"], logs), highlight=False
        )

    def on_train_end(self, logs=None):
        self.progress.stop()
