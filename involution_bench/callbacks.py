"""The Keras callbacks a run trains with: the epoch recorder and TensorBoard.

`EpochRecorder` is the bridge between Keras' training loop and the run
folder's one writer (`runs.RunWriter`): it saves a checkpoint after every
epoch, then hands the epoch's numbers to the writer, and stops a run whose
loss stops being finite.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras

from involution_bench.runs import RunWriter, checkpoint_path

TENSORBOARD_DIR = "tensorboard"


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, batch: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, batch {batch}")


class EpochRecorder(keras.callbacks.Callback):
    """Checkpoints the model after every epoch, then hands the epoch to the run's writer.

    It also stops the run at the first batch whose loss is not finite (the
    epoch's running mean turns NaN with it), saying where.
    """

    def __init__(self, writer: RunWriter) -> None:
        super().__init__()
        self.writer = writer

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
        save_model(self.model, checkpoint_path(self.writer.run_dir, epoch + 1))
        self.writer.record_epoch(
            logs or {}, now - self._epoch_start, (self._train_end or now) - self._epoch_start
        )


def tensorboard_callback(run_dir: Path) -> keras.callbacks.TensorBoard:
    """Per-epoch logs in the run folder; a resumed run appends to them."""
    return keras.callbacks.TensorBoard(
        log_dir=str(run_dir / TENSORBOARD_DIR), update_freq="epoch", profile_batch=0
    )


def save_model(model: keras.Model, path: Path) -> None:
    """Save via a temporary name, so a reader finds the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.keras")  # Keras insists on .keras
    model.save(temporary)
    temporary.replace(path)
