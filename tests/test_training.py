"""Training through the library: stopped and failed runs are marked and keep their epochs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from involution_bench.config import config_from_dict
from involution_bench.data import DATA_DIR_ENV
from involution_bench.train.loop import prepare_run, train


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


def test_saved_model_reloads_in_a_new_process_with_the_trained_logits(
    tmp_path, monkeypatch, cifar_dir
):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    run = prepare_run(config_from_dict(tiny_config(epochs=1)), tmp_path / "runs")
    run.fit()
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import numpy as np, keras
        import involution_bench
        model = keras.saving.load_model({str(run.run_dir / "model.keras")!r}, safe_mode=True)
        images = np.load({str(tmp_path / "images.npy")!r})
        np.save({str(tmp_path / "logits.npy")!r}, model.predict(images, verbose=0))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    np.testing.assert_allclose(
        np.load(tmp_path / "logits.npy"), run.model.predict(images, verbose=0), rtol=1e-5, atol=1e-6
    )


NATIVE_MODEL = [
    {"involution": {"kernel_size": 5, "groups": 1, "reduction_ratio": 1, "name": "inv_1"}},
    {"max_pool": {"pool_size": 8}},
    "flatten",
    {"dense": {"units": 10}},
]


@pytest.mark.parametrize(
    ("layers", "setting", "expected"),
    [
        (NATIVE_MODEL, "auto", False),  # XLA cannot compile the native kernel
        (NATIVE_MODEL, True, True),  # honoured: its involutions switch to slices
        (NATIVE_MODEL, False, False),
        ([{"conv2d": {"filters": 2}}, "flatten", {"dense": {"units": 10}}], "auto", "auto"),
    ],
)
def test_jit_compile_resolution(layers, setting, expected):
    from involution_bench.models.build import build_model, resolve_jit_compile
    from involution_bench.ops.involution import native_suits

    raw = tiny_config()
    raw["model"]["layers"] = layers
    config = config_from_dict(raw)
    model = build_model(config.layers, config.model.input_shape)
    if layers is NATIVE_MODEL and setting == "auto" and not native_suits("float32"):
        expected = "auto"  # no native kernel here: Keras decides
    assert resolve_jit_compile(setting, model) == expected


# A 4-channel batch norm, and an involution whose kernel generator normalizes
# 4 channels: both would train on the native kernel, which XLA cannot compile.
NARROW_NORM_MODEL = [
    {"conv2d": {"filters": 4, "kernel_size": 3, "padding": "same"}},
    "batch_norm",
    "relu",
    {"involution": {"kernel_size": 3, "groups": 1, "reduction_ratio": 1}},
    "global_avg_pool",
    {"dense": {"units": 10}},
]


@pytest.mark.parametrize("layers", [NATIVE_MODEL, NARROW_NORM_MODEL], ids=["involution", "norms"])
def test_forced_xla_trains_models_that_would_run_native_kernels(
    layers, tmp_path, monkeypatch, cifar_dir
):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    raw = tiny_config(epochs=1, jit_compile=True)
    raw["model"]["layers"] = layers
    result = train(config_from_dict(raw), tmp_path)
    assert result.summary.status == "completed"
    assert result.summary.jit_compile is True
    assert result.summary.involution_op == "slices"
    assert np.isfinite(result.summary.final_val_loss)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from involution_bench.train.optimizers import learning_rate_schedule

    config = config_from_dict(
        tiny_config(epochs=10, learning_rate=0.1, schedule="cosine", warmup_epochs=2)
    )
    schedule = learning_rate_schedule(config.train, steps_per_epoch=5)
    rates = {step: float(schedule(step)) for step in (0, 5, 10, 30, 50)}
    assert rates[0] == pytest.approx(0.0)
    assert rates[5] == pytest.approx(0.05)  # halfway through the warmup
    assert rates[10] == pytest.approx(0.1)  # warmup done: the peak
    assert rates[30] == pytest.approx(0.05, abs=1e-6)  # halfway through the cosine
    assert rates[50] == pytest.approx(0.0, abs=1e-6)
    constant = config_from_dict(tiny_config(learning_rate=0.1))
    assert learning_rate_schedule(constant.train, 5) == 0.1


@pytest.mark.parametrize(
    ("train", "kind", "expected"),
    [
        (
            {"optimizer": "sgd", "momentum": 0.9, "nesterov": True},
            "SGD",
            {"momentum": 0.9, "nesterov": True},
        ),
        ({"optimizer": "adamw", "weight_decay": 0.05}, "AdamW", {"weight_decay": 0.05}),
        ({"optimizer": "adamw"}, "AdamW", {"weight_decay": 0.004}),  # Keras' default kept
        ({"optimizer": "adam"}, "Adam", {"weight_decay": None}),
    ],
)
def test_optimizers_get_their_settings(train, kind, expected):
    from involution_bench.train.optimizers import make_optimizer

    optimizer = make_optimizer(config_from_dict(tiny_config(**train)).train, steps_per_epoch=3)
    assert type(optimizer).__name__ == kind
    for key, value in expected.items():
        assert getattr(optimizer, key) == (None if value is None else pytest.approx(value))


def test_a_run_with_every_training_option_completes_and_saves(tmp_path, monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    options = {
        "epochs": 2,
        "optimizer": "sgd",
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "augment": True,
        "label_smoothing": 0.1,
    }
    result = train(config_from_dict(tiny_config(**options)), tmp_path)
    assert result.summary.status == "completed"
    assert np.isfinite(result.summary.final_val_loss)
    reloaded = keras.saving.load_model(result.run_dir / "model.keras", safe_mode=True)
    assert type(reloaded.optimizer).__name__ == "SGD"
    assert reloaded.loss.label_smoothing == pytest.approx(0.1)


def test_tensorboard_logs_go_into_the_run_folder(tmp_path, monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    result = train(config_from_dict(tiny_config(epochs=1, tensorboard=True)), tmp_path)
    for split in ("train", "validation"):
        assert list((result.run_dir / "tensorboard" / split).glob("events.out.tfevents.*"))
    # The HParams dashboard: the run's config keys and its final metrics.
    from tensorboard.plugins.hparams import plugin_data_pb2

    hparams, metrics = {}, {}
    for events in (result.run_dir / "tensorboard").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data
                if plugin.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
                    hparams.update(data.session_start_info.hparams)
                elif value.tag.startswith("hparams/"):
                    metrics[value.tag] = float(tf.make_ndarray(value.tensor))
    assert hparams["train.learning_rate"].number_value == pytest.approx(0.001)
    assert hparams["name"].string_value == "tiny"
    assert "model.layers.0.involution.kernel_size" in hparams
    assert metrics["hparams/best_val_accuracy"] == pytest.approx(result.summary.best_val_accuracy)
    quiet = train(config_from_dict(tiny_config(epochs=1)), tmp_path)
    assert not (quiet.run_dir / "tensorboard").exists()


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_without_nan(precision, tmp_path, monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    run = prepare_run(config_from_dict(tiny_config(epochs=1, precision=precision)), tmp_path)
    involution = run.model.get_layer("inv_1")
    assert involution.compute_dtype == precision.removeprefix("mixed_")
    assert involution.variable_dtype == "float32"
    # In 16 bits the native kernel wins at every shape (native_wins), where it exists.
    from involution_bench.ops.involution import native_suits

    expected = "native" if native_suits(precision.removeprefix("mixed_")) else "slices"
    assert involution.resolved_implementation() == expected
    summary = run.fit()
    assert summary.status == "completed" and summary.precision == precision
    assert np.isfinite(summary.final_val_loss) and np.isfinite(run.writer.history["loss"][0])
    # The next run gets its own precision, not the one left behind.
    plain = prepare_run(config_from_dict(tiny_config(epochs=1)), tmp_path)
    assert plain.model.get_layer("inv_1").compute_dtype == "float32"
