"""The suite on a run folder: `invbench robustness RUN` and `train.robustness`.

The run's saved model (`best.keras`, or `model.keras` for "last") is loaded
in Keras' safe mode, as `eval` loads it, and evaluated on the run's own test
images; `robustness.json`, `robustness.png` and `reliability.png` go into the
run folder.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from involution_bench.analysis.plots import png_bytes
from involution_bench.data import ImageData
from involution_bench.data.pipelines import evaluation_batch_size, image_batches
from involution_bench.errors import RunError
from involution_bench.models import load_saved_model
from involution_bench.robustness.figures import reliability_figure, robustness_figure
from involution_bench.robustness.suite import SuiteOptions, robustness_report
from involution_bench.runs import BEST_MODEL_FILE, MODEL_FILE, Run, RunFolder
from involution_bench.runs.dataset import run_data
from involution_bench.runs.files import RELIABILITY_PLOT, ROBUSTNESS_FILE, ROBUSTNESS_PLOT
from involution_bench.system.interrupts import batch_end_callback, interrupts_between_batches
from involution_bench.system.machine import cpu_description
from involution_bench.system.provenance import now_iso

CHECKPOINTS = {"best": BEST_MODEL_FILE, "last": MODEL_FILE}


def model_predict(model) -> Any:
    """Logits for float32 images, in batches, without Keras' progress bar; a signal
    stops it between batches. The batches come untuned (`image_batches`): Keras' own
    array pipeline stalls after some passes, and the suite makes dozens of them."""

    def predict(images: np.ndarray) -> np.ndarray:
        batches = image_batches(images, evaluation_batch_size(images.shape[1:]))
        with interrupts_between_batches():
            return model.predict(batches, verbose=0, callbacks=[batch_end_callback()])

    return predict


def checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    """The model file of `checkpoint`; "best" falls back to the last model where the run
    kept no best one (train.keep_best off), as the completion test does."""
    if checkpoint not in CHECKPOINTS:
        raise RunError("--checkpoint", f"must be best or last, not {checkpoint!r}")
    path = run_dir / CHECKPOINTS[checkpoint]
    if checkpoint == "best" and not path.is_file() and (run_dir / MODEL_FILE).is_file():
        return run_dir / MODEL_FILE
    return path


def suite_on_data(
    model, data: ImageData, options: SuiteOptions, limit: int | None = None
) -> dict[str, Any]:
    images, labels = data.x_test[:limit], np.asarray(data.y_test[:limit])
    report = robustness_report(model_predict(model), images, labels, options)
    report["dataset"] = data.source
    report["evaluated_at"] = now_iso()
    report["machine"] = cpu_description()
    return report


def write_report(run_dir: Path, report: dict[str, Any], title: str) -> list[Path]:
    folder = RunFolder(run_dir)
    return [
        folder.write_json(ROBUSTNESS_FILE, report),
        folder.write_bytes(ROBUSTNESS_PLOT, png_bytes(robustness_figure(report, title))),
        folder.write_bytes(RELIABILITY_PLOT, png_bytes(reliability_figure(report, title))),
    ]


def evaluate_run(
    run: Run, checkpoint: str = "best", limit: int | None = None, options: SuiteOptions = None
) -> tuple[dict[str, Any], list[Path]]:
    """The suite on a run's saved model; the report and the files written."""
    options = options or SuiteOptions()
    path = checkpoint_path(run.path, checkpoint)
    model = load_saved_model(path, "is missing: the run has not finished an epoch")
    report = suite_on_data(model, run_data(run), options, limit)
    report["checkpoint"] = checkpoint
    report["model_file"] = path.name
    return report, write_report(run.path, report, run.name)


def after_training(run_dir: Path, name: str, model, data: ImageData) -> list[Path]:
    """`train.robustness`: the suite on the model the completion test chose."""
    best = run_dir / BEST_MODEL_FILE
    chosen = load_saved_model(best, "is missing") if best.is_file() else model
    report = suite_on_data(chosen, data, replace(SuiteOptions()))
    report["checkpoint"] = "best" if best.is_file() else "last"
    report["model_file"] = BEST_MODEL_FILE if best.is_file() else MODEL_FILE
    return write_report(run_dir, report, name)
