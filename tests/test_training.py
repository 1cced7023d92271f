"""Training through the library: stopped and failed runs are marked and keep their epochs."""

from __future__ import annotations

import json

import keras
import pytest
from conftest import tiny_config

from involution_bench.config import config_from_dict
from involution_bench.data import DATA_DIR_ENV
from involution_bench.training import train


class StopAfterFirstEpoch(keras.callbacks.Callback):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def on_epoch_end(self, epoch, logs=None):
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [(KeyboardInterrupt(), "interrupted"), (RuntimeError("disk on fire"), "failed")],
)
def test_stopped_run_is_marked_and_keeps_finished_epochs(
    tmp_path, monkeypatch, cifar_dir, error, status
):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    config = config_from_dict(tiny_config(epochs=3))
    with pytest.raises(type(error)):
        train(config, tmp_path, callbacks=[StopAfterFirstEpoch(error)])
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    assert summary["status"] == status
    assert summary["epochs_done"] == 1 and len(history["val_accuracy"]) == 1
    assert (run_dir / "model.keras").is_file() and (run_dir / "loss.png").is_file()
    if status == "failed":
        assert summary["error"] == "RuntimeError: disk on fire"
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]
