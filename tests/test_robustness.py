"""The robustness suite: shifts, calibration, the cache, the command, `train.robustness`
and the comparison's robustness columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error, make_run, tiny_config
from test_corruptions import natural_images
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATA_DIR_ENV
from involution_bench.robustness import shifts
from involution_bench.robustness.calibration import (
    expected_calibration_error,
    negative_log_likelihood,
    reliability,
    softmax,
)
from involution_bench.robustness.suite import SuiteOptions, consistency, robustness_report
from involution_bench.runs import RunFolder, load_run
from involution_bench.system.cache import CACHE_ENV

runner = CliRunner()


@pytest.fixture(autouse=True)
def offline_data(monkeypatch, cifar_dir, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


def test_circular_shift_rolls_and_translation_shifts_in_zeros():
    images = natural_images(2)
    offsets = np.array([[2, -3], [-1, 0]])
    rolled = shifts.circular_shift(images, offsets)
    for index, (dy, dx) in enumerate(offsets):
        expected = np.roll(images[index], (dy, dx), axis=(0, 1)) / 255.0
        np.testing.assert_allclose(rolled[index], expected, atol=1e-7)
    moved = shifts.translate(images, np.array([[0, 3], [2, 0]]))
    np.testing.assert_allclose(moved[0, :, 3:], images[0, :, :-3] / 255.0, atol=1e-7)
    assert not moved[0, :, :3].any() and not moved[1, :2].any()


def test_rotation_by_a_quarter_turn_is_rot90_and_by_zero_is_a_translation():
    images = natural_images(2)
    turned = shifts.rotate_translate(images, np.array([90.0, 0.0]), np.array([[0, 0], [1, 2]]))
    quarter = np.rot90(images[0], k=1, axes=(0, 1)) / 255.0
    assert np.allclose(turned[0], quarter, atol=1e-5) or np.allclose(
        turned[0], np.rot90(images[0], k=-1, axes=(0, 1)) / 255.0, atol=1e-5
    )
    np.testing.assert_allclose(
        turned[1], shifts.translate(images[1:], np.array([[1, 2]]))[0], atol=1e-6
    )


def test_a_model_of_1x1_convolutions_and_a_global_pool_is_shift_invariant():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 1, activation="relu"),
            keras.layers.Conv2D(16, 1, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    images = natural_images(64, seed=3)
    result = consistency(lambda x: model.predict(x, verbose=0), images, SuiteOptions())
    assert result["value"] == 1.0 and result["draws"] == 5


def test_the_ece_is_the_hand_computation():
    # top probabilities 0.95 (right), 0.95 (wrong), 0.55 (right), 0.30 (wrong), in bins
    # 15, 15, 9 and 5 of 15: 2/4 |0.5 - 0.95| + 1/4 |1 - 0.55| + 1/4 |0 - 0.30|
    probabilities = np.array(
        [[0.95, 0.05, 0.0], [0.95, 0.05, 0.0], [0.2, 0.55, 0.25], [0.30, 0.25, 0.25]]
    )  # the last need not sum to 1: only the top probability counts
    labels = np.array([0, 1, 1, 2])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.4125)
    bins = reliability(probabilities, labels).to_dict()
    assert bins["count"][14] == 2 and bins["count"][8] == 1 and bins["count"][4] == 1
    assert bins["accuracy"][14] == 0.5 and bins["confidence"][8] == pytest.approx(0.55)
    assert sum(bins["count"]) == 4 and bins["accuracy"][0] is None


def test_a_confidence_on_a_bin_edge_belongs_to_the_lower_bin():
    probabilities = np.array([[1 / 3, 1 / 3 - 1e-9, 1 / 3], [1.0, 0.0, 0.0]])
    bins = reliability(probabilities, np.array([0, 0]), bins=3).to_dict()
    assert bins["count"] == [1, 0, 1]


def test_the_nll_is_the_cross_entropy_of_the_logits():
    import keras

    logits = np.random.default_rng(0).normal(size=(20, 5)) * 3
    labels = np.arange(20) % 5
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert negative_log_likelihood(logits, labels) == pytest.approx(float(keras_loss), rel=1e-5)
    assert softmax(logits).sum(axis=1) == pytest.approx(np.ones(20))


def test_the_second_model_reads_the_generated_sets_from_the_cache(tmp_path):
    images, labels = natural_images(16), np.arange(16) % 10
    weights = np.random.default_rng(1).normal(size=(32 * 32 * 3, 10))

    def predict(x):
        return x.reshape(len(x), -1) @ weights

    options = SuiteOptions(corruptions=("gaussian_noise", "fog"), cache_root=tmp_path / "sets")
    first = robustness_report(predict, images, labels, options)
    second = robustness_report(predict, images, labels, options)
    assert first["corruptions"]["cache_hits"] == 0 and second["corruptions"]["cache_hits"] == 10
    assert first["corruptions"]["by_corruption"] == second["corruptions"]["by_corruption"]
    assert len(list((tmp_path / "sets").rglob("*.npy"))) == 10
    assert not list((tmp_path / "sets").rglob("*.tmp"))
    other_seed = robustness_report(
        predict, images, labels, SuiteOptions(**{**options.__dict__, "seed": 1})
    )
    assert other_seed["corruptions"]["cache_hits"] == 0
    assert len(list((tmp_path / "sets").rglob("*.npy"))) == 20


def train_tiny(write_config, runs_dir, **train):
    config = tiny_config(epochs=2, batch_size=8, deterministic=True, **train)
    result = runner.invoke(
        app, ["train", "-q", "-c", str(write_config(config)), "--runs-dir", str(runs_dir)]
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = runs_dir.iterdir()
    return run_dir


def test_robustness_through_the_cli_and_compare(write_config, tmp_path):
    runs = [train_tiny(write_config, tmp_path / f"runs{seed}") for seed in (0, 1)]
    result = runner.invoke(app, ["robustness", *map(str, runs), "--limit", "16"])
    assert result.exit_code == 0, result.output
    assert "left out: frost" in result.stdout
    report = json.loads((runs[0] / "robustness.json").read_text())
    assert report["images"] == 16 and report["checkpoint"] == "best"
    assert report["model_file"] == "best.keras"
    corrupted = report["corruptions"]
    assert len(corrupted["names"]) == 14 and corrupted["left_out"] == ["frost"]
    accuracy = np.array([corrupted["by_corruption"][n]["accuracy"] for n in corrupted["names"]])
    assert accuracy.shape == (14, 5)
    assert corrupted["mean_accuracy"] == pytest.approx(accuracy.mean())
    assert report["translation"]["pixels"] == list(range(9))
    assert report["translation"]["accuracy"][0] == pytest.approx(report["clean"]["accuracy"])
    assert 0 <= report["worst_of_k"]["accuracy"] <= report["clean"]["accuracy"]
    assert report["seconds"]["images_inferred"] == 16 * (1 + 10 + 9 + 10 + 70)
    for name in ("robustness.png", "reliability.png"):
        assert (runs[0] / name).stat().st_size > 10_000

    out = tmp_path / "compare"
    result = runner.invoke(
        app,
        ["compare", *map(str, runs), "--out", str(out), "--no-group", "--baseline", runs[0].name],
    )
    assert result.exit_code == 0, result.output
    assert "robustness" in result.stdout and "relative mCE" in result.stdout
    for header in ("corruption acc", "consistency", "worst of 10", "ECE", "corruption ECE"):
        assert header in result.stdout
    for name in ("robustness-severity.png", "robustness-shift.png", "robustness-corruptions.png"):
        assert (out / name).stat().st_size > 10_000
    rows = json.loads((out / "comparison.json").read_text())
    assert rows[0]["corruption_accuracy"] == pytest.approx(corrupted["mean_accuracy"])


def test_robustness_refuses_an_incomplete_frost_folder(write_config, tmp_path):
    run = train_tiny(write_config, tmp_path / "runs")
    (tmp_path / "frost").mkdir()
    result = runner.invoke(app, ["robustness", str(run), "--frost-dir", str(tmp_path / "frost")])
    assert_one_line_error(result, "frost", "frost1.png")


def test_train_robustness_writes_the_suite_before_the_run_is_complete(write_config, tmp_path):
    run_dir = train_tiny(write_config, tmp_path / "runs", robustness=True)
    run = load_run(run_dir)
    assert run.status == "completed"
    report = json.loads((run_dir / "robustness.json").read_text())
    assert report["images"] == 24 and report["checkpoint"] == "best"
    assert report["clean"]["accuracy"] == pytest.approx(run.summary.test_accuracy)


def robustness_file(run_dir, clean: float, corrupted: list[float]) -> None:
    """A robustness.json with one corruption, its accuracy at severities 1-5."""
    report = {
        "images": 100,
        "clean": {"accuracy": clean, "ece": 0.1},
        "consistency": {"value": clean - 0.1},
        "worst_of_k": {"accuracy": clean - 0.3, "k": 10},
        "translation": {"pixels": [0, 1], "accuracy": [clean, clean - 0.05]},
        "corruptions": {
            "names": ["fog"],
            "severities": [1, 2, 3, 4, 5],
            "by_corruption": {"fog": {"accuracy": corrupted}},
            "mean_accuracy": float(np.mean(corrupted)),
            "mean_accuracy_by_severity": corrupted,
        },
    }
    RunFolder(run_dir).write_json("robustness.json", report)


def test_relative_mce_and_the_robustness_differences_by_hand(tmp_path):
    base = [make_run(tmp_path, f"conv{s}", [0.5, 0.6], name="conv", seed=s) for s in (1, 2)]
    other = [make_run(tmp_path, f"inv{s}", [0.5, 0.6], name="inv", seed=s) for s in (1, 2)]
    for run in base:  # clean error 0.2, rises 0.1 .. 0.5: 1.5 in all
        robustness_file(run, 0.8, [0.7, 0.6, 0.5, 0.4, 0.3])
    robustness_file(other[0], 0.7, [0.65, 0.6, 0.55, 0.5, 0.45])  # rises 0.75 in all
    robustness_file(other[1], 0.7, [0.65, 0.6, 0.55, 0.5, 0.45])
    result = runner.invoke(
        app, ["compare", str(tmp_path), "--out", str(tmp_path / "out"), "--baseline", "conv"]
    )
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "relative mCE" in line)
    assert "50.0%" in line  # 0.75 / 1.5
    corrupted = next(
        line
        for line in result.stdout.splitlines()
        if line.startswith("inv") and "corruption acc" in line
    )
    assert "0.5500" in corrupted and "+0.0500" in corrupted


def test_a_quick_look_does_not_replace_a_fuller_evaluation(write_config, tmp_path):
    run = train_tiny(write_config, tmp_path / "runs")
    assert runner.invoke(app, ["robustness", str(run), "--limit", "12"]).exit_code == 0
    full = (run / "robustness.json").read_text()
    for quick in (["--limit", "8"], ["--limit", "12", "--no-corruptions"]):
        result = runner.invoke(app, ["robustness", str(run), *quick])
        assert_one_line_error(result, "robustness.json", "fuller evaluation", "--force")
        assert (run / "robustness.json").read_text() == full
    result = runner.invoke(app, ["robustness", str(run), "--limit", "8", "--force"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "robustness.json").read_text())["images"] == 8


def test_a_run_stopped_in_its_robustness_suite_resumes_to_finish_it(
    write_config, tmp_path, monkeypatch
):
    """All epochs done, the suite interrupted: --resume runs only the suite, no epoch."""
    import involution_bench.train.loop as loop

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop, "after_training", stopped)
        config = tiny_config(epochs=2, batch_size=8, deterministic=True, robustness=True)
        config_file = write_config(config)
        result = runner.invoke(
            app, ["train", "-q", "-c", str(config_file), "--runs-dir", str(tmp_path / "runs")]
        )
    assert result.exit_code != 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    stopped_run = load_run(run_dir)
    assert stopped_run.status == "interrupted" and stopped_run.epochs_done == 2
    assert not (run_dir / "robustness.json").exists()
    history = stopped_run.history

    result = runner.invoke(app, ["train", "-q", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    run = load_run(run_dir)
    assert run.status == "completed" and run.epochs_done == 2
    assert run.history == history  # no epoch trained again
    assert run.summary.resumed[-1]["from_epoch"] == 2
    report = json.loads((run_dir / "robustness.json").read_text())
    assert report["clean"]["accuracy"] == pytest.approx(run.summary.test_accuracy)

    result = runner.invoke(app, ["train", "-q", "--resume", str(run_dir)])
    assert_one_line_error(result, str(run_dir), "already completed")
