"""`train.keep_best` and `train.early_stopping`, and both across a resume."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import load_cifar10, tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.config import config_from_dict
from involution_bench.data import DATA_DIR_ENV, scaled
from involution_bench.runs import load_run
from involution_bench.train.callbacks import epochs_without_improvement
from involution_bench.train.loop import prepare_resume, prepare_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def offline_data(monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))


class InterruptAfter(keras.callbacks.Callback):
    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("values", "min_delta", "stale"),
    [
        ([0.1, 0.2, 0.3], 0.0, 0),
        ([0.3, 0.2, 0.3], 0.0, 2),  # equal to the best is no rise
        ([0.3, 0.305, 0.31], 0.01, 2),  # rises smaller than min_delta do not count
        ([0.3, 0.32, 0.2, 0.1], 0.01, 2),
        ([], 0.0, 0),
    ],
)
def test_epochs_without_improvement(values, min_delta, stale):
    assert epochs_without_improvement(values, min_delta) == stale


def test_best_keras_holds_the_model_of_the_best_epoch(cifar_dir, tmp_path):
    config = config_from_dict(tiny_config(epochs=4, batch_size=8, deterministic=True))
    run = prepare_run(config, tmp_path)
    summary = run.fit()
    best = keras.saving.load_model(run.run_dir / "best.keras", safe_mode=True)
    data = load_cifar10(cifar_dir)
    # Validation is the test split: the best model scores exactly the best accuracy there.
    predictions = best.predict(scaled(data.x_test), verbose=0).argmax(axis=-1)
    assert np.mean(predictions == data.y_test) == pytest.approx(summary.best_val_accuracy)


def test_each_epoch_saves_the_model_once_and_best_keras_is_its_copy(tmp_path, monkeypatch):
    saved = []
    save = keras.Model.save

    def counting_save(self, path, *args, **kwargs):
        saved.append(Path(path).name)
        return save(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", counting_save)
    run = prepare_run(config_from_dict(tiny_config(epochs=2, batch_size=8)), tmp_path)
    run.fit()
    checkpoint_saves = [name for name in saved if "epoch-" in name]
    assert len(checkpoint_saves) == 2 and not [name for name in saved if "best" in name]
    best = keras.saving.load_model(run.run_dir / "best.keras", safe_mode=True)
    assert best.optimizer is not None and int(best.optimizer.iterations) > 0


def test_keep_best_off_writes_no_best_model(tmp_path):
    run = prepare_run(config_from_dict(tiny_config(epochs=1, keep_best=False)), tmp_path)
    run.fit()
    assert not (run.run_dir / "best.keras").exists()


def stalling_config(epochs: int = 12) -> dict:
    # A learning rate this small leaves the model (and its accuracy) where it starts.
    return tiny_config(
        epochs=epochs,
        optimizer="sgd",
        learning_rate=1e-12,
        early_stopping={"patience": 2, "min_delta": 0.0},
    )


def test_early_stopping_ends_a_stalled_run_as_completed_saying_why(tmp_path):
    run = prepare_run(config_from_dict(stalling_config()), tmp_path)
    summary = run.fit()
    assert summary.status == "completed"
    assert summary.epochs_done == 3 and summary.epochs_planned == 12
    assert summary.stopped_early["epoch"] == 3
    assert "did not rise by more than 0.0 for 2 epochs" in summary.stopped_early["reason"]
    assert (run.run_dir / "model.keras").is_file() and (run.run_dir / "best.keras").is_file()


def test_early_stopping_and_the_best_model_survive_a_resume(tmp_path):
    run = prepare_run(config_from_dict(stalling_config()), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run.fit(callbacks=[InterruptAfter(2)])
    assert load_run(run.run_dir).status == "interrupted"
    best_before = (run.run_dir / "best.keras").stat().st_mtime_ns
    resumed = prepare_resume(run.run_dir)
    summary = resumed.fit()
    # The two stale epochs count from the first run's history: it stops at 3, not 4.
    assert summary.status == "completed" and summary.epochs_done == 3
    assert summary.stopped_early["epoch"] == 3 and summary.best_epoch == 1
    assert (run.run_dir / "best.keras").stat().st_mtime_ns == best_before  # still epoch 1's


def test_early_stopping_is_checked_in_the_config(write_config):
    path = write_config(tiny_config(early_stopping={"patience": 0}))
    result = runner.invoke(app, ["config", str(path)])
    assert result.exit_code == 2 and "train.early_stopping.patience" in result.stderr


def test_through_the_cli_a_resumed_run_keeps_counting_stalled_epochs(write_config, tmp_path):
    import signal

    from conftest import start_training, wait_for_epochs

    config = stalling_config(epochs=12)
    # Patience 6 leaves five epochs for the signal to land in, however busy the machine:
    # at patience 3 a loaded machine once delivered it after the run had stopped itself.
    config["train"]["early_stopping"]["patience"] = 6
    # 40 steps an epoch: at 10 steps, faster steps let the run finish first on a clean clone once.
    config["train"]["batch_size"] = 2
    process = start_training(write_config(config), tmp_path / "runs")
    run_dir = wait_for_epochs(tmp_path / "runs", 1, process)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    stopped = load_run(run_dir)
    assert stopped.status == "interrupted" and 1 <= stopped.epochs_done < 7
    assert (run_dir / "best.keras").is_file()

    resumed = runner.invoke(app, ["train", "--resume", str(run_dir), "-q"])
    assert resumed.exit_code == 0, resumed.output
    summary = load_run(run_dir).summary
    # Epoch 1 is the best; six stalled epochs after it end the run at 7, however it was cut.
    assert summary.status == "completed" and summary.epochs_done == 7
    assert summary.stopped_early["epoch"] == 7 and summary.best_epoch == 1
