"""The test set, touched once: when a run completes, its chosen model and its last.

Nothing during training reads the test images (unless `data.validation: test`
makes them the validation images, as the source article does). At completion
the chosen model (`best.keras`, the best validation epoch's, where the run kept
one) and the last model each classify the test set once; `summary.json`
records both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from involution_bench.data import ImageData
from involution_bench.data.pipelines import evaluation_batch_size, evaluation_batches
from involution_bench.models import load_saved_model
from involution_bench.runs import BEST_MODEL_FILE, MODEL_FILE
from involution_bench.system.interrupts import batch_end_callback, interrupts_between_batches


@dataclass(frozen=True)
class TestScores:
    accuracy: float
    loss: float


def logit_scores(logits: np.ndarray, labels: np.ndarray) -> TestScores:
    """Top-1 accuracy, and the cross-entropy of the logits, against integer labels."""
    labels = np.asarray(labels)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    return TestScores(float(np.mean(logits.argmax(axis=-1) == labels)), float(loss))


def test_scores(model: keras.Model, data: ImageData) -> TestScores:
    """One pass of `model` over the test images: accuracy, and cross-entropy of its logits."""
    images = evaluation_batches(
        data.x_test, data.y_test, evaluation_batch_size(data.x_test.shape[1:])
    ).map(lambda x, y: x)
    with interrupts_between_batches():
        logits = model.predict(images, verbose=0, callbacks=[batch_end_callback()])
    return logit_scores(logits, data.y_test)


def final_test(run_dir: Path, last: keras.Model, data: ImageData) -> dict[str, object]:
    """The summary's test fields: the chosen model's scores and the last model's."""
    best = run_dir / BEST_MODEL_FILE
    chosen_file = BEST_MODEL_FILE if best.is_file() else MODEL_FILE
    chosen = load_saved_model(best, "is missing") if best.is_file() else last
    chosen_scores = test_scores(chosen, data)
    last_scores = test_scores(last, data) if chosen is not last else chosen_scores
    return {
        "test_accuracy": chosen_scores.accuracy,
        "test_loss": chosen_scores.loss,
        "test_model": chosen_file,
        "test_accuracy_last": last_scores.accuracy,
        "test_loss_last": last_scores.loss,
    }
