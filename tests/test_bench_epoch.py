"""`bench epoch`: a real epoch against its bare steps, in one process."""

from __future__ import annotations

import json
import time

import keras
import numpy as np
from conftest import TRAIN_PER_BATCH, tiny_config
from typer.testing import CliRunner

from involution_bench.bench.epoch import BareStepTimer, bench_epoch
from involution_bench.cli import app
from involution_bench.config import config_from_dict
from involution_bench.models.build import build_model
from involution_bench.train.optimizers import make_optimizer

runner = CliRunner()
BATCH = 32
STEPS_PER_EPOCH = -(-5 * TRAIN_PER_BATCH // BATCH)  # the tiny copy's 80 images


def tiny_bench_config(cifar_dir, epochs: int = 2):
    config = tiny_config(epochs=epochs, batch_size=BATCH)
    config["data"]["dir"] = str(cifar_dir)
    return config_from_dict(config)


class SlowBatches(keras.callbacks.Callback):
    """A callback that costs `seconds` after every training batch."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)


def test_every_epoch_is_timed_in_parts_against_bare_steps_on_both_sides(cifar_dir, tmp_path):
    result = bench_epoch(tiny_bench_config(cifar_dir, epochs=3), steps=3, runs_root=tmp_path)
    assert result.config == "tiny"
    assert [timing.epoch for timing in result.epochs] == [1, 2, 3]
    for timing in result.epochs:
        assert timing.steps == STEPS_PER_EPOCH
        parts = timing.train_seconds + timing.validation_seconds + timing.finish_seconds
        assert np.isclose(parts, timing.epoch_seconds)
        assert min(timing.train_seconds, timing.validation_seconds, timing.finish_seconds) > 0
        assert timing.bare_step_milliseconds > 0
        assert np.isclose(timing.overhead, timing.epoch_seconds / timing.bare_seconds)
    later = sorted(timing.overhead for timing in result.epochs[1:])
    assert result.overhead == np.median(later)
    # The run it trained is a real one, and its own epoch times lie inside the bench's.
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_done"] == 3
    recorded = json.loads((run_dir / "history.json").read_text())["epoch_seconds"]
    for timing, seconds in zip(result.epochs, recorded, strict=True):
        assert timing.train_seconds < seconds < timing.epoch_seconds


def test_what_the_callbacks_cost_shows_as_overhead(cifar_dir, tmp_path):
    delay = 0.05  # far above a tiny step's few milliseconds
    result = bench_epoch(
        tiny_bench_config(cifar_dir), steps=3, callbacks=lambda: [SlowBatches(delay)]
    )
    for timing in result.epochs:
        assert timing.train_seconds - timing.bare_seconds > 0.9 * delay * timing.steps
        assert timing.train_overhead > 1.5
    assert not list(tmp_path.iterdir())  # a throwaway folder unless given one


def test_the_bare_steps_leave_the_model_and_optimizer_as_they_found_them(cifar_dir):
    config = tiny_bench_config(cifar_dir)
    model = build_model(config.layers, config.model.input_shape, name=config.name)
    model.compile(optimizer=make_optimizer(config.train, STEPS_PER_EPOCH), loss="mse")
    rng = np.random.default_rng(0)
    images = rng.random((BATCH, 32, 32, 3), dtype=np.float32)
    labels = keras.utils.to_categorical(rng.integers(0, 10, BATCH), 10)
    model.train_on_batch(images, labels)  # the optimizer's slots hold something
    before = [v.numpy().copy() for v in [*model.variables, *model.optimizer.variables]]
    timer = BareStepTimer((images, labels), steps=3)
    timer.set_model(model)
    timer.on_train_begin()
    after = [v.numpy() for v in [*model.variables, *model.optimizer.variables]]
    assert len(timer.block_seconds) == 1 and timer.block_seconds[0] > 0
    assert len(after) == len(before)
    for saved, now in zip(before, after, strict=True):
        np.testing.assert_array_equal(saved, now)
    model.train_on_batch(images, labels)  # and it still trains
    assert not np.array_equal(model.variables[0].numpy(), before[0])


def test_cli_bench_epoch_table_and_json(cifar_dir, write_config):
    config = tiny_config(batch_size=BATCH)
    config["data"]["dir"] = str(cifar_dir)
    path = write_config(config)
    arguments = ["bench", "epoch", "-c", str(path), "--epochs", "2", "--steps", "2"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "epoch / bare" in result.stdout and "val s" in result.stdout
    assert "tiny: an epoch takes " in result.stdout and "(median over epochs 2-2)" in result.stdout
    assert "epoch 2/2" in result.stderr  # the run's own progress lines, kept off stdout
    result = runner.invoke(app, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["config"] == "tiny" and row["machine"]["cpu"]
    assert [epoch["epoch"] for epoch in row["epochs"]] == [1, 2]
    assert row["overhead"] == row["epochs"][1]["overhead"]
    assert {"train_overhead", "bare_step_milliseconds", "validation_seconds"} <= set(
        row["epochs"][0]
    )


def test_cli_bench_epoch_needs_two_epochs(cifar_dir, write_config):
    path = write_config(tiny_config())
    result = runner.invoke(app, ["bench", "epoch", "-c", str(path), "--epochs", "1"])
    assert result.exit_code == 2
    assert "--epochs" in result.output
