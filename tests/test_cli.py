"""The `invbench` commands end to end through typer.testing, on the tiny data set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import assert_one_line_error, tiny_config
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
        "best.keras",
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
    environment = summary["environment"]
    assert environment["tensorflow"] and environment["python"]
    # Figures from different machines stay comparable: the CPU is named.
    assert environment["cpu"] and environment["cpu_count"] >= 1
    assert environment["vector_isa"] and "native_build" in environment
    assert environment["gpus"] == [] and environment["git_dirty"] in (True, False, None)
    assert environment["command"] and all(isinstance(word, str) for word in environment["command"])
    assert summary["seed"] == 7
    assert summary["layers"][0]["name"] == "inv_1"
    assert summary["macs_per_image"] == sum(layer["macs"] for layer in summary["layers"]) > 0
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
    assert "tiny (seed 7): best val_accuracy" in result.output


def test_plot_redraws_the_newest_run(trained):
    _, run_dir, _ = trained
    (run_dir / "loss.png").unlink()
    result = runner.invoke(app, ["plot", "--runs-dir", str(run_dir.parent)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "loss.png").read_bytes().startswith(PNG_MAGIC)
    assert str(run_dir / "accuracy.png") in result.output


def test_compare_shows_runs_side_by_side_and_writes_its_files(trained, tmp_path):
    _, run_dir, _ = trained
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(run_dir.parent), "--out", str(out), "--wide"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "tiny" in result.stdout and "completed" in result.stdout and "2/2" in result.stdout
    assert f"{summary['best_val_accuracy']:.4f}" in result.stdout
    assert f"{summary['macs_per_image']:,}" in result.stdout
    assert (out / "comparison.png").read_bytes().startswith(PNG_MAGIC)
    assert (out / "comparison.md").read_text().startswith("| run | status |")
    assert (
        (out / "comparison.csv").read_text().startswith("name,status,epochs,seeds,validated_on,n,")
    )
    assert json.loads((out / "comparison.json").read_text())[0]["name"] == "tiny"


def test_compare_prints_machine_formats_and_defaults_to_a_new_folder(trained, tmp_path):
    _, run_dir, _ = trained
    runs_dir = tmp_path / "runs"
    result = runner.invoke(
        app, ["compare", str(run_dir), "--format", "json", "--runs-dir", str(runs_dir)]
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)  # standard output holds the JSON alone
    assert row["runs"] == [str(run_dir.resolve())] and row["epochs"] == "2/2"
    (out,) = runs_dir.iterdir()
    assert out.name.startswith("compare-") and (out / "comparison.png").is_file()
    assert str(out) in result.stderr

    csv_result = runner.invoke(app, ["compare", str(run_dir), "-f", "csv", "--out", str(out)])
    assert csv_result.stdout.splitlines()[1].startswith("tiny,completed,2/2,7,test,1,")


def test_info_prints_layers_and_totals_without_training():
    result = runner.invoke(app, ["info", "--config", "configs/inv.yaml"])
    assert result.exit_code == 0, result.output
    assert "inv_1" in result.stdout and "Involution" in result.stdout and "32x32x3" in result.stdout
    assert "article-inv: 13,080 parameters (13,074 trainable), 65,344 multiply-accumulates" in (
        result.stdout
    )
    assert "(65.3 K)" in result.stdout


def test_runs_lists_run_folders_newest_last(trained, tmp_path):
    _, run_dir, _ = trained
    result = runner.invoke(app, ["runs", str(run_dir.parent)])
    assert result.exit_code == 0, result.output
    assert run_dir.name in result.stdout and "completed" in result.stdout
    empty = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path)])
    assert empty.exit_code == 0 and f"no runs under {tmp_path}" in empty.stdout


def test_kernels_draws_one_row_per_image(trained, tmp_path):
    _, run_dir, _ = trained
    out = tmp_path / "maps.png"
    result = runner.invoke(app, ["kernels", str(run_dir), "--images", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(PNG_MAGIC)
    # Several runs: one figure, each run's maps side by side, as wide as all of them.
    both = tmp_path / "both.png"
    twice = [str(run_dir), str(run_dir), "--images", "3", "--out", str(both)]
    result = runner.invoke(app, ["kernels", *twice])
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert Image.open(both).size[0] > Image.open(out).size[0] * 1.25


def test_kernels_refuses_a_model_without_involution(tmp_path):
    import keras

    run_dir = tmp_path / "20261126-000000-conv"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"name": "conv", "status": "completed"}))
    (run_dir / "history.json").write_text(json.dumps({"val_accuracy": [0.1]}))
    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(
        run_dir / "model.keras"
    )
    result = runner.invoke(app, ["kernels", str(run_dir)])
    assert_one_line_error(result, "model.keras", "has no involution or attention layers")


def test_data_counts_images_and_draws_the_grid(cifar_dir, tmp_path):
    grid = tmp_path / "grid.png"
    result = runner.invoke(app, ["data", "--grid", str(grid)])
    assert result.exit_code == 0, result.output
    assert f"source: {cifar_dir / 'cifar-10-batches-py'}" in result.stdout
    total = next(line for line in result.stdout.splitlines() if "total" in line)
    assert "80" in total and "24" in total
    assert grid.read_bytes().startswith(PNG_MAGIC)


def test_repeat_trains_each_config_with_successive_seeds(write_config, tmp_path):
    path = write_config(tiny_config(epochs=1))
    runs_dir = tmp_path / "runs"
    args = ["train", "-c", str(path), "--repeat", "2", "--runs-dir", str(runs_dir), "-q"]
    result = runner.invoke(app, [*args, "--set", "data.limit_train=32"])
    assert result.exit_code == 0, result.output
    seeds = sorted(json.loads((d / "summary.json").read_text())["seed"] for d in runs_dir.iterdir())
    assert seeds == [7, 8]
    compared = runner.invoke(app, ["compare", str(runs_dir), "-f", "json", "--out", str(tmp_path)])
    (row,) = json.loads(compared.stdout)
    assert row["seeds"] == [7, 8] and row["best_val_accuracy"]["count"] == 2


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "info", "plot", "compare", "runs", "kernels", "data"):
        assert command in result.output


def test_ctrl_c_marks_the_run_interrupted_and_exits_130(write_config, tmp_path, monkeypatch):
    from involution_bench.train.progress import EpochLines

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


def test_info_takes_several_config_files_as_arguments():
    """configs/equal-macs/conv.yaml suggests `invbench info configs/equal-macs/*.yaml`."""
    from pathlib import Path

    files = sorted(str(path) for path in Path("configs/equal-macs").glob("*.yaml"))
    result = runner.invoke(app, ["info", *files])
    assert result.exit_code == 0, result.output
    for name in ("equal-attention", "equal-conv", "equal-involution"):
        assert f"{name}: " in result.stdout
    nothing = runner.invoke(app, ["info"])
    assert nothing.exit_code == 2 and "give one or more config files" in nothing.stderr
