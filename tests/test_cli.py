"""The `invbench` commands end to end through typer.testing, on the tiny data set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.config import config_from_dict, load_config
from involution_bench.data import DATA_DIR_ENV

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def offline_data(monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cifar_dir):
    """One real two-epoch run through the CLI, shared by the tests that read it."""
    root = tmp_path_factory.mktemp("trained")
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config()))
    runs_dir = root / "runs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DATA_DIR_ENV, str(cifar_dir))
        result = runner.invoke(
            app,
            [
                "train",
                "--config",
                str(config_path),
                "--set",
                "data.limit_test=16",
                "--runs-dir",
                str(runs_dir),
                "--quiet",
            ],
        )
    assert result.exit_code == 0, result.output
    (run_dir,) = runs_dir.iterdir()
    return result, run_dir, config_path


def test_train_writes_a_complete_run_folder(trained):
    result, run_dir, config_path = trained
    assert {p.name for p in run_dir.iterdir()} == {
        "config.yaml",
        "summary.json",
        "history.json",
        "loss.png",
        "accuracy.png",
        "model.keras",
    }
    assert run_dir.name.endswith("-tiny")
    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    assert summary["status"] == "completed"
    assert summary["epochs_done"] == summary["epochs_planned"] == 2
    assert summary["train_images"] == 80 and summary["test_images"] == 16
    assert summary["parameters"]["total"] == (
        summary["parameters"]["trainable"] + summary["parameters"]["non_trainable"]
    )
    assert summary["environment"]["tensorflow"] and summary["environment"]["python"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
        assert len(history[key]) == 2
    assert summary["best_val_accuracy"] == max(history["val_accuracy"])
    assert summary["final_val_accuracy"] == history["val_accuracy"][-1]
    assert summary["seconds_per_epoch"] == pytest.approx(np.mean(history["epoch_seconds"]))
    assert summary["images_per_second"] > 0
    for image in ("loss.png", "accuracy.png"):
        assert (run_dir / image).read_bytes().startswith(PNG_MAGIC)
    # The resolved config (overrides applied) reproduces the run's settings.
    saved = config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    assert saved == load_config(config_path, ["data.limit_test=16"])
    assert "epoch 2/2" in result.output
    assert f"run folder: {run_dir}" in result.output
    assert "tiny: best val_accuracy" in result.output


def test_plot_redraws_the_newest_run(trained):
    _, run_dir, _ = trained
    (run_dir / "loss.png").unlink()
    result = runner.invoke(app, ["plot", "--runs-dir", str(run_dir.parent)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "loss.png").read_bytes().startswith(PNG_MAGIC)
    assert str(run_dir / "accuracy.png") in result.output


def test_compare_shows_runs_side_by_side(trained):
    _, run_dir, _ = trained
    result = runner.invoke(app, ["compare", str(run_dir.parent)])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "tiny" in result.output and "completed" in result.output and "2/2" in result.output
    assert f"{summary['best_val_accuracy']:.4f}" in result.output


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_config_exits_2_before_any_run_folder(write_config, tmp_path):
    config = tiny_config()
    config["train"]["epcohs"] = 3
    path = write_config(config)
    result = runner.invoke(app, ["train", "-c", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert_one_line_error(result, str(path), "train.epcohs", "did you mean 'epochs'")
    assert not (tmp_path / "runs").exists()


def test_bad_override_exits_2(write_config, tmp_path):
    path = write_config(tiny_config())
    result = runner.invoke(app, ["train", "-c", str(path), "--set", "train.nope=1"])
    assert_one_line_error(result, "--set", "train.nope", "no such key")


def test_missing_data_exits_2_without_a_run_folder(write_config, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "no-data"))
    path = write_config(tiny_config())
    runs_dir = tmp_path / "runs"
    result = runner.invoke(app, ["train", "-c", str(path), "--runs-dir", str(runs_dir), "-q"])
    assert_one_line_error(result, str(tmp_path / "no-data"), "does not exist")
    assert list(runs_dir.iterdir()) == []


def test_plot_and_compare_refuse_a_folder_that_is_not_a_run(tmp_path):
    assert_one_line_error(runner.invoke(app, ["plot", str(tmp_path)]), "not a run folder")
    assert_one_line_error(runner.invoke(app, ["compare", str(tmp_path)]), "holds no runs")


def test_plot_refuses_a_run_with_no_finished_epoch(tmp_path):
    run_dir = tmp_path / "20261126-000000-fresh"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"name": "fresh", "status": "running"}))
    (run_dir / "history.json").write_text(json.dumps({"val_accuracy": []}))
    result = runner.invoke(app, ["plot", str(run_dir)])
    assert_one_line_error(result, str(run_dir), "has no finished epoch to plot yet")


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "plot", "compare"):
        assert command in result.output


def test_ctrl_c_marks_the_run_interrupted_and_exits_130(write_config, tmp_path, monkeypatch):
    from involution_bench.progress import EpochLines

    def interrupt_after_printing(self, epoch, logs=None):
        self.console.print(f"epoch {epoch + 1} done")
        raise KeyboardInterrupt

    monkeypatch.setattr(EpochLines, "on_epoch_end", interrupt_after_printing)
    path = write_config(tiny_config())
    runs_dir = tmp_path / "runs"
    result = runner.invoke(app, ["train", "-c", str(path), "--runs-dir", str(runs_dir), "-q"])
    assert result.exit_code == 130, result.output
    (run_dir,) = runs_dir.iterdir()
    assert f"interrupted: {run_dir} keeps 1 finished epoch(s)" in result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_done"] == 1
    assert (run_dir / "model.keras").is_file()
