"""The bad-input catalogue, through the CLI: exit code 2, one line naming the file
(and key, line or path) and the problem, no traceback, and no run folder."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import assert_one_line_error, tiny_config, with_layer, with_train
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATA_DIR_ENV

runner = CliRunner()


BAD_CONFIGS = {
    "yaml syntax": ("name: x\nmodel: [1, 2\n", ["line 3, column 1", "invalid YAML"]),
    "unknown key": (with_train(epcohs=3), ["train.epcohs", "did you mean 'epochs'"]),
    "wrong type": (with_train(batch_size="big"), ["train.batch_size", "integer"]),
    "zero epochs": (with_train(epochs=0), ["train.epochs", "greater than 0"]),
    "negative batch size": (with_train(batch_size=-4), ["train.batch_size", "greater than 0"]),
    "even kernel size": (
        with_layer(0, {"involution": {"kernel_size": 4}}),
        ["model.layers[0].involution.kernel_size", "odd"],
    ),
    "zero kernel size": (
        with_layer(0, {"involution": {"kernel_size": 0}}),
        ["model.layers[0].involution.kernel_size"],
    ),
    "groups not dividing channels": (
        with_layer(0, {"involution": {"kernel_size": 3, "groups": 2}}),
        ["model.layers[0].involution.groups", "does not divide the 3 input channels"],
    ),
    "reduction ratio zero": (
        with_layer(0, {"involution": {"kernel_size": 3, "reduction_ratio": 0}}),
        ["model.layers[0].involution.reduction_ratio", "greater than 0"],
    ),
    "unknown layer kind": (with_layer(1, "relu6"), ["model.layers[1]", "unknown layer kind"]),
    "not ten outputs": (with_layer(6, {"dense": {"units": 7}}), ["10"]),
    "input shape the data cannot feed": (
        {**tiny_config(), "model": {**tiny_config()["model"], "input_shape": [28, 28, 1]}},
        ["model.input_shape", "[28, 28, 1] cannot be fed by CIFAR-10", "[32, 32, 3]"],
    ),
}


@pytest.mark.parametrize("command", ["train", "info", "bench model"])
@pytest.mark.parametrize("case", BAD_CONFIGS, ids=str)
def test_bad_config_is_refused_before_any_run_folder(case, command, write_config, tmp_path):
    content, fragments = BAD_CONFIGS[case]
    path = write_config(content)
    runs_dir = tmp_path / "runs"
    arguments = [*command.split(), "-c", str(path)]
    arguments += ["--runs-dir", str(runs_dir)] if command == "train" else []
    result = runner.invoke(app, arguments)
    assert_one_line_error(result, str(path), *fragments)
    assert not runs_dir.exists()


def test_set_for_a_key_that_does_not_exist(write_config, tmp_path):
    path = write_config(tiny_config())
    result = runner.invoke(app, ["train", "-c", str(path), "--set", "train.epoch=2"])
    assert_one_line_error(result, "--set", "train.epoch", "did you mean 'epochs'")


@pytest.fixture
def broken_data(cifar_dir, tmp_path, monkeypatch):
    """A copy of the tiny data set to damage; training reads it."""
    copy = tmp_path / "data"
    shutil.copytree(cifar_dir, copy)
    monkeypatch.setenv(DATA_DIR_ENV, str(copy))
    return copy / "cifar-10-batches-py"


def train_tiny(write_config, tmp_path):
    path = write_config(tiny_config())
    runs_dir = tmp_path / "runs"
    return runner.invoke(app, ["train", "-c", str(path), "--runs-dir", str(runs_dir), "-q"])


def test_missing_data_folder(write_config, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    assert_one_line_error(train_tiny(write_config, tmp_path), "nowhere", "does not exist")
    assert not list((tmp_path / "runs").iterdir())


def test_incomplete_data_folder(broken_data, write_config, tmp_path):
    (broken_data / "data_batch_3").unlink()
    result = train_tiny(write_config, tmp_path)
    assert_one_line_error(result, "data_batch_3", "missing batch file")
    assert not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_batch_file(damage, broken_data, write_config, tmp_path):
    batch = broken_data / "test_batch"
    blob = batch.read_bytes()
    batch.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else b"\x80\x02garbage")
    result = train_tiny(write_config, tmp_path)
    assert_one_line_error(result, "test_batch", "truncated or corrupted batch file")
    assert not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("command", "problem"),
    [("compare", "holds no runs"), ("plot", "not a run folder"), ("kernels", "not a run folder")],
)
def test_a_folder_that_is_not_a_run(command, problem, tmp_path):
    result = runner.invoke(app, [command, str(tmp_path)])
    assert_one_line_error(result, str(tmp_path), problem)


@pytest.mark.parametrize("command", ["plot", "kernels"])
def test_a_run_with_no_finished_epoch(command, tmp_path):
    run_dir = tmp_path / "20261126-000000-fresh"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"name": "fresh", "status": "running"}))
    (run_dir / "history.json").write_text(json.dumps({"val_accuracy": []}))
    assert_one_line_error(
        runner.invoke(app, [command, str(run_dir)]), str(run_dir), "no finished epoch"
    )


def test_compare_of_a_run_with_no_finished_epoch_shows_it(tmp_path):
    run_dir = tmp_path / "20261126-000000-fresh"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"name": "fresh", "status": "running"}))
    result = runner.invoke(app, ["compare", str(run_dir), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0 and "fresh" in result.stdout  # shown for what it is


def test_an_output_folder_that_cannot_be_written(write_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    path = write_config(tiny_config())
    result = runner.invoke(app, ["train", "-c", str(path), "--runs-dir", str(blocker / "runs")])
    assert_one_line_error(result, str(blocker / "runs"), "cannot create the output folder")
    out = runner.invoke(app, ["compare", str(tmp_path), "--out", str(blocker / "cmp")])
    assert out.exit_code == 2


def test_yaml_config_is_refused_with_its_line(write_config):
    path = write_config("name: x\n  bad: indent\n")
    result = runner.invoke(app, ["info", "-c", str(path)])
    assert_one_line_error(result, str(path), "line 2")


def test_a_baseline_that_names_no_row(tmp_path):
    run_dir = tmp_path / "20261126-000000-inv"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"name": "inv", "status": "completed"}))
    (run_dir / "history.json").write_text(json.dumps({"val_accuracy": [0.5]}))
    result = runner.invoke(
        app, ["compare", str(run_dir), "--out", str(tmp_path / "o"), "--baseline", "cnn"]
    )
    assert_one_line_error(result, "--baseline", "no row or run is named 'cnn'", "rows: inv")


def test_a_failed_download_is_one_line(write_config, tmp_path, monkeypatch):
    import keras

    from involution_bench.data import clear_loaded

    def offline():
        raise Exception("URL fetch failure on https://example.invalid/cifar: no network")

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    clear_loaded()
    result = train_tiny(write_config, tmp_path)
    clear_loaded()
    assert_one_line_error(result, "CIFAR-10 download", "URL fetch failure", DATA_DIR_ENV)
    assert not list((tmp_path / "runs").iterdir())
