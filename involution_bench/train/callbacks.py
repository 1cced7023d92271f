"""The Keras callbacks a run trains with: the epoch recorder and TensorBoard.

`EpochRecorder` is the bridge between Keras' training loop and the run
folder's one writer (`runs.RunWriter`): it saves a checkpoint after every
epoch, then hands the epoch's numbers to the writer, and stops a run whose
loss stops being finite.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import keras

from involution_bench.config import TrainConfig, flatten_config
from involution_bench.runs import RunFolder, RunSummary, RunWriter


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, batch: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, batch {batch}")


def epochs_without_improvement(val_accuracy: list[float], min_delta: float) -> int:
    """Epochs since val accuracy last rose by more than `min_delta` above its best."""
    best, last_improved = -math.inf, 0
    for epoch, value in enumerate(val_accuracy, start=1):
        if value > best + min_delta:
            best, last_improved = value, epoch
    return len(val_accuracy) - last_improved


class EpochRecorder(keras.callbacks.Callback):
    """Checkpoints the model after every epoch, then hands the epoch to the run's writer.

    With `train.keep_best` it copies the checkpoint to `best.keras` whenever the epoch's
    validation accuracy is the best so far; with `train.early_stopping` it
    ends the run once that accuracy has stalled. Both read the run's whole
    history, so they carry on unchanged across a resume. It also stops the
    run at the first batch whose loss is not finite (the epoch's running mean
    turns NaN with it), saying where.
    """

    def __init__(self, writer: RunWriter, train: TrainConfig) -> None:
        super().__init__()
        self.writer = writer
        self.train = train

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._epoch_start = time.perf_counter()
        self._train_end = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(self._epoch, batch + 1, float(loss))

    def on_test_begin(self, logs=None):
        self._train_end = time.perf_counter()  # validation runs inside the epoch

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        logs = logs or {}
        history = self.writer.history
        checkpoint = self.writer.save_checkpoint(epoch + 1, self.model.save)
        # Saved before the summary names this epoch best, so the two never disagree.
        if self.train.keep_best and logs["val_accuracy"] > max(
            history["val_accuracy"], default=-math.inf
        ):
            self.writer.keep_as_best(checkpoint)
        self.writer.record_epoch(
            logs, now - self._epoch_start, (self._train_end or now) - self._epoch_start
        )
        self._stop_if_stalled()

    def _stop_if_stalled(self) -> None:
        rule = self.train.early_stopping
        done = self.writer.epochs_done
        if rule is None or done >= self.train.epochs:
            return
        stale = epochs_without_improvement(self.writer.history["val_accuracy"], rule.min_delta)
        if stale < rule.patience:
            return
        summary = self.writer.summary
        summary.stopped_early = {
            "epoch": done,
            "reason": f"val_accuracy did not rise by more than {rule.min_delta} for "
            f"{stale} epochs (best {summary.best_val_accuracy:.4f} at epoch "
            f"{summary.best_epoch})",
        }
        self.writer.save()
        self.model.stop_training = True


def tensorboard_callback(folder: RunFolder) -> keras.callbacks.TensorBoard:
    """Per-epoch logs in the run folder; a resumed run appends to them."""
    return keras.callbacks.TensorBoard(
        log_dir=str(folder.tensorboard_dir()), update_freq="epoch", profile_batch=0
    )


# The results a run's HParams entry reports, from its summary.
HPARAM_METRICS = ("best_val_accuracy", "final_val_accuracy", "final_val_loss", "seconds_per_epoch")


def log_hparams(folder: RunFolder, config: dict[str, Any], summary: RunSummary) -> None:
    """The run's config keys and final metrics for TensorBoard's HParams dashboard.

    Every config key becomes a hyperparameter (dotted, as `--set` names it),
    so the runs of a sweep line up in its parallel-coordinates view.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    values = {
        key: value if isinstance(value, bool | int | float | str) else json.dumps(value)
        for key, value in flatten_config(config).items()
    }
    writer = tf.summary.create_file_writer(str(folder.tensorboard_dir()))
    with writer.as_default():
        hparams_api.hparams(values, trial_id=folder.path.name)
        for metric in HPARAM_METRICS:
            value = getattr(summary, metric)
            if value is not None:
                tf.summary.scalar(f"hparams/{metric}", value, step=summary.epochs_done)
    writer.close()
