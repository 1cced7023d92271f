"""The honest protocol: choose on a held-out split, touch the test set once at the end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error, load_cifar10, make_run, tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATA_DIR_ENV
from involution_bench.data.split import stratified_holdout, with_validation
from involution_bench.runs import load_run

runner = CliRunner()


def test_the_split_is_stratified_disjoint_and_fixed_by_its_seed():
    labels = np.repeat(np.arange(10), [500, 480, 520, 500, 500, 510, 490, 500, 500, 500])
    held = stratified_holdout(labels, 500, seed=0)
    assert len(held) == len(set(held)) == 500
    shares = np.bincount(labels[held], minlength=10)
    expected = np.bincount(labels, minlength=10) * 500 / len(labels)
    assert np.all(np.abs(shares - expected) <= 1)
    np.testing.assert_array_equal(held, stratified_holdout(labels, 500, seed=0))
    assert not np.array_equal(held, stratified_holdout(labels, 500, seed=1))


def test_the_split_holds_out_training_images_and_keeps_the_test_set(cifar_dir):
    data = load_cifar10(cifar_dir)
    split = with_validation(data, 20, split_seed=0)
    assert (len(split.y_train), len(split.y_val), split.validation) == (60, 20, "split")
    rows = {row.tobytes() for row in data.x_train.reshape(80, -1)}
    train = {row.tobytes() for row in split.x_train.reshape(60, -1)}
    val = {row.tobytes() for row in split.x_val.reshape(20, -1)}
    assert train.isdisjoint(val) and train | val <= rows
    np.testing.assert_array_equal(split.x_test, data.x_test)
    default = with_validation(data, None, split_seed=0)
    assert len(default.y_val) == 8  # a tenth of the training images


def test_validation_on_test_changes_nothing_but_names_it(cifar_dir):
    data = load_cifar10(cifar_dir)
    on_test = with_validation(data, "test", split_seed=0)
    assert on_test.validation == "test"
    np.testing.assert_array_equal(on_test.x_train, data.x_train)
    np.testing.assert_array_equal(on_test.x_val, data.x_test)


@pytest.mark.parametrize(
    ("value", "fragment"), [(80, "not fewer than the 80"), (-5, "greater than 0"), ("val", "test")]
)
def test_an_impossible_validation_size_is_one_line_naming_the_key(
    value, fragment, write_config, tmp_path, cifar_dir, monkeypatch
):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    config = tiny_config()
    config["data"] = {"validation": value}
    path = write_config(config)
    result = runner.invoke(app, ["train", "-c", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert_one_line_error(result, str(path), "data.validation", fragment)


def count_test_passes(monkeypatch) -> list[str]:
    from involution_bench.train import testing

    calls: list[str] = []
    original = testing.test_scores

    def counted(model, data):
        calls.append(model.name)
        return original(model, data)

    monkeypatch.setattr(testing, "test_scores", counted)
    return calls


def test_the_test_set_is_read_twice_at_completion_and_never_before(
    write_config, tmp_path, cifar_dir, monkeypatch
):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    calls = count_test_passes(monkeypatch)
    seen_during_training: list[int] = []

    from involution_bench.train import loop

    original_finish = loop.PreparedRun._finish

    def finish(self, status, error=None):
        seen_during_training.append(len(calls))
        return original_finish(self, status, error)

    monkeypatch.setattr(loop.PreparedRun, "_finish", finish)
    config = tiny_config(epochs=2)
    config["data"] = {"validation": 16}
    result = runner.invoke(
        app, ["train", "-q", "-c", str(write_config(config)), "--runs-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert seen_during_training == [0] and len(calls) == 2
    (run_dir,) = (tmp_path / "r").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["validation"] == "split" and summary["validation_images"] == 16
    assert summary["train_images"] == 64 and summary["test_images"] == 24
    assert summary["test_model"] == "best.keras"
    for key in ("test_accuracy", "test_loss", "test_accuracy_last", "test_loss_last"):
        assert isinstance(summary[key], float)
    assert "test accuracy" in result.stdout and "validated on 16 held out" in result.stdout
    evaluated = runner.invoke(app, ["eval", str(run_dir), "--checkpoint", "best"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["accuracy"] == pytest.approx(summary["test_accuracy"])


def test_a_resumed_run_is_tested_once_at_its_end(write_config, tmp_path, cifar_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    config = tiny_config(epochs=1)
    config["data"] = {"validation": 16}
    path = write_config(config)
    first = runner.invoke(app, ["train", "-q", "-c", str(path), "--runs-dir", str(tmp_path / "r")])
    assert first.exit_code == 0, first.output
    (run_dir,) = (tmp_path / "r").iterdir()
    # Make it a run stopped after its first epoch of two, as an interrupted one is.
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(status="interrupted", epochs_planned=2, test_accuracy=None)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "model.keras").rename(run_dir / "checkpoints" / "epoch-0001.keras")
    calls = count_test_passes(monkeypatch)
    resumed = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "train.epochs=2"])
    assert resumed.exit_code == 0, resumed.output
    assert len(calls) == 2
    finished = load_run(run_dir).summary
    assert finished.epochs_done == 2 and finished.test_accuracy is not None
    assert finished.validation == "split"


def test_compare_labels_old_test_validated_and_held_out_runs(tmp_path):
    runs = tmp_path / "runs"
    for seed, best in ((1, 0.6), (2, 0.62)):  # written before validation splits: no test fields
        make_run(
            runs,
            f"2026112{seed}-000001-old",
            [0.5, best],
            name="old",
            seed=seed,
            validation=None,
            validation_images=None,
            test_accuracy=None,
            test_accuracy_last=None,
        )
    for seed in (1, 2):
        make_run(
            runs,
            f"2026112{seed}-000003-article",
            [0.5, 0.7],
            name="article",
            seed=seed,
            validation="test",
            test_accuracy=0.7,
            test_accuracy_last=0.7,
        )
        make_run(
            runs,
            f"2026112{seed}-000004-honest",
            [0.5, 0.65 + seed / 100],
            name="honest",
            seed=seed,
            validation="split",
            validation_images=8,
            test_accuracy=0.6 + seed / 100,
            test_accuracy_last=0.58,
        )
    result = runner.invoke(app, ["compare", str(runs), "--out", str(tmp_path / "c"), "-f", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["old"]["validated_on"] == "test" and rows["article"]["validated_on"] == "test"
    assert rows["honest"]["validated_on"] == "split"
    assert rows["old"]["test_accuracy"]["mean"] == pytest.approx(0.61)  # chosen on test
    assert rows["honest"]["test_accuracy"]["mean"] == pytest.approx(0.615)
    assert all(row["metric"] == "test_accuracy" for row in rows.values())

    table = runner.invoke(
        app, ["compare", str(runs), "--out", str(tmp_path / "c")], env={"COLUMNS": "100"}
    )
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    header = next(line for line in lines if line.startswith("run"))
    assert "test acc" in header and "validated" in header
    assert "validated on test: chosen on the test set" in table.stdout
    honest = next(line for line in lines if line.startswith("honest"))
    assert " split " in honest

    by_val = runner.invoke(
        app,
        [
            "compare",
            str(runs),
            "--out",
            str(tmp_path / "c"),
            "--metric",
            "best_val_accuracy",
            "-f",
            "json",
        ],
    )
    assert {row["metric"] for row in json.loads(by_val.stdout)} == {"best_val_accuracy"}
    bad = runner.invoke(app, ["compare", str(runs), "--metric", "loss"])
    assert_one_line_error(bad, "--metric", "test_accuracy")
