"""Evaluating a run's saved model on its dataset's test set: `invbench eval`.

Accuracy and loss overall and per class, the confusion matrix, and how
many images per second the model classifies (batched inference, after a
warm-up pass). The model is loaded in Keras' safe mode.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from involution_bench.data import scaled
from involution_bench.data.pipelines import evaluation_batch_size
from involution_bench.models import load_saved_model
from involution_bench.runs import BEST_MODEL_FILE, MODEL_FILE, Run
from involution_bench.runs.dataset import run_data
from involution_bench.system.machine import cpu_description
from involution_bench.system.provenance import now_iso
from involution_bench.train.testing import logit_scores

CHECKPOINTS = {"best": BEST_MODEL_FILE, "last": MODEL_FILE}


@dataclass(frozen=True)
class Evaluation:
    checkpoint: str
    model_file: str
    images: int
    accuracy: float
    loss: float
    per_class_accuracy: dict[str, float]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class
    images_per_second: float
    evaluated_at: str
    machine: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_run(run: Run, checkpoint: str = "best", repeats: int = 3) -> Evaluation:
    """The run's `best.keras` (or `model.keras` for "last") on its test images."""
    model_path = run.path / CHECKPOINTS[checkpoint]
    missing = (
        "is missing: the run kept no best model (train.keep_best was off, or it has no "
        "finished epoch); try --checkpoint last"
        if checkpoint == "best"
        else "is missing: the run has not finished an epoch"
    )
    model = load_saved_model(model_path, missing)
    data = run_data(run)
    images, labels = scaled(data.x_test), data.y_test
    class_names = data.class_names

    batch = evaluation_batch_size(images.shape[1:])
    model.predict(images[:batch], batch_size=batch, verbose=0)  # warm-up: tracing
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        logits = model.predict(images, batch_size=batch, verbose=0)
        seconds.append(time.perf_counter() - start)
    scores = logit_scores(logits, labels)
    predicted = logits.argmax(axis=-1)
    matrix = confusion_matrix(labels, predicted, len(class_names))
    totals = matrix.sum(axis=1)
    return Evaluation(
        checkpoint=checkpoint,
        model_file=str(model_path),
        images=len(labels),
        accuracy=scores.accuracy,
        loss=scores.loss,
        per_class_accuracy={
            name: float(matrix[index, index] / totals[index]) if totals[index] else float("nan")
            for index, name in enumerate(class_names)
        },
        confusion_matrix=matrix.tolist(),
        images_per_second=len(labels) / statistics.median(seconds),
        evaluated_at=now_iso(),
        machine=cpu_description(),
    )


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """`matrix[t, p]`: how many images of true class t were predicted as p."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix
