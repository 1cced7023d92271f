"""`invbench eval`: a saved model on the test set, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error, tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATA_DIR_ENV
from involution_bench.data.cifar10 import CLASS_NAMES
from involution_bench.runs import load_run
from involution_bench.train.evaluate import confusion_matrix

runner = CliRunner()


@pytest.fixture(autouse=True)
def offline_data(monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))


def train_tiny(write_config, tmp_path, **train):
    path = write_config(tiny_config(epochs=3, batch_size=8, deterministic=True, **train))
    result = runner.invoke(app, ["train", "-q", "-c", str(path), "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    return run_dir


def test_eval_reports_the_best_and_the_last_model_on_the_test_set(write_config, tmp_path):
    run_dir = train_tiny(write_config, tmp_path / "runs")
    summary = load_run(run_dir).summary
    for checkpoint, expected in (
        ("best", summary.best_val_accuracy),
        ("last", summary.final_val_accuracy),
    ):
        result = runner.invoke(app, ["eval", str(run_dir), "--checkpoint", checkpoint])
        assert result.exit_code == 0, result.output
        report = json.loads((run_dir / "eval.json").read_text())
        # The validation split is the test split: the same model scores the same.
        assert report["accuracy"] == pytest.approx(expected)
        assert report["checkpoint"] == checkpoint and report["images"] == 24
        matrix = np.array(report["confusion_matrix"])
        assert matrix.shape == (10, 10) and matrix.sum() == 24
        assert np.trace(matrix) / 24 == pytest.approx(report["accuracy"])
        assert list(report["per_class_accuracy"]) == list(CLASS_NAMES)
        assert report["images_per_second"] > 0 and report["machine"]["cpu"]
        assert np.isfinite(report["loss"])
        assert f"accuracy {report['accuracy']:.4f}" in result.stdout
        assert (run_dir / "confusion.png").stat().st_size > 0


def test_eval_without_a_best_model_says_what_to_do(write_config, tmp_path):
    run_dir = train_tiny(write_config, tmp_path / "runs", keep_best=False)
    result = runner.invoke(app, ["eval", str(run_dir)])
    assert_one_line_error(result, "best.keras", "try --checkpoint last")


def test_the_confusion_matrix_counts_true_against_predicted():
    matrix = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
