"""Fitting a model from a config into a run folder.

The run folder is created only once the config and data are known to be
good. `history.json` and `summary.json` are rewritten after every epoch, so
a run stopped at epoch 7 still shows six finished epochs; the status turns
`completed` only after the model and plots are on disk.
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import keras

from involution_bench.config import ExperimentConfig, dump_config
from involution_bench.data import load_cifar10, make_datasets, resolve_data_dir
from involution_bench.flops import layer_costs, total_macs
from involution_bench.models import (
    build_model,
    involution_layers,
    parameter_counts,
    prepare_for_xla,
    uses_native_involution,
)
from involution_bench.plots import plot_run
from involution_bench.runs import (
    CONFIG_FILE,
    HISTORY_FILE,
    HISTORY_KEYS,
    MODEL_FILE,
    SUMMARY_FILE,
    create_run_dir,
    ensure_root,
    load_run,
    write_atomic,
    write_json,
)

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]


class RunRecorder(keras.callbacks.Callback):
    """Keeps history and summary on disk up to date after every epoch."""

    def __init__(self, run_dir: Path, summary: dict[str, Any], train_images: int) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.summary = summary
        self.train_images = train_images
        self.history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
        self.train_seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs=None):
        self._train_end = time.perf_counter()  # validation runs inside the epoch

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        logs = logs or {}
        for key in HISTORY_KEYS[:-1]:
            self.history[key].append(float(logs[key]))
        self.history["epoch_seconds"].append(now - self._epoch_start)
        self.train_seconds.append((self._train_end or now) - self._epoch_start)
        self.summary.update(epoch_statistics(self.history, self.train_seconds, self.train_images))
        self.save()

    def save(self) -> None:
        write_json(self.run_dir / HISTORY_FILE, self.history)
        write_json(self.run_dir / SUMMARY_FILE, self.summary)


def epoch_statistics(
    history: dict[str, list[float]], train_seconds: Sequence[float], train_images: int
) -> dict[str, Any]:
    val_accuracy = history["val_accuracy"]
    best = max(range(len(val_accuracy)), key=val_accuracy.__getitem__)
    return {
        "epochs_done": len(val_accuracy),
        "best_val_accuracy": val_accuracy[best],
        "best_epoch": best + 1,
        "final_val_accuracy": val_accuracy[-1],
        "final_val_loss": history["val_loss"][-1],
        "final_accuracy": history["accuracy"][-1],
        "seconds_per_epoch": sum(history["epoch_seconds"]) / len(val_accuracy),
        "images_per_second": train_images * len(train_seconds) / sum(train_seconds),
    }


@dataclass
class PreparedRun:
    """A run folder with its model and data ready: `fit` trains it."""

    config: ExperimentConfig
    run_dir: Path
    model: keras.Model
    train_data: Any
    validation_data: Any
    recorder: RunRecorder

    def fit(self, callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict[str, Any]:
        """Train to the planned epochs; a stopped run is marked and keeps what it has."""
        try:
            self.model.fit(
                self.train_data,
                epochs=self.config.train.epochs,
                validation_data=self.validation_data,
                callbacks=[self.recorder, *callbacks],
                shuffle=False,  # the pipeline reshuffles every epoch itself
                verbose=0,
            )
        except KeyboardInterrupt:
            _finish(self.model, self.recorder, "interrupted")
            raise
        except Exception as exc:
            self.recorder.summary["error"] = f"{type(exc).__name__}: {exc}"
            _finish(self.model, self.recorder, "failed")
            raise
        _finish(self.model, self.recorder, "completed")
        return self.recorder.summary


def prepare_run(config: ExperimentConfig, runs_root: Path) -> PreparedRun:
    """Load data and build the model, then create the run folder: bad input leaves none."""
    ensure_root(runs_root)
    data = load_cifar10(resolve_data_dir(config.data.dir)).limited(
        config.data.limit_train, config.data.limit_test
    )
    keras.utils.set_random_seed(config.seed)
    train_data, validation_data = make_datasets(data, config.train.batch_size, config.seed)
    model = build_model(config.layers, config.model.input_shape, name=config.name)
    jit_compile = resolve_jit_compile(config.train.jit_compile, model)
    if jit_compile is True:
        prepare_for_xla(model)
    model.compile(
        optimizer=OPTIMIZERS[config.train.optimizer](learning_rate=config.train.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )

    costs = layer_costs(model)

    run_dir = create_run_dir(runs_root, config.name)
    write_atomic(run_dir / CONFIG_FILE, dump_config(config))
    summary = {
        "name": config.name,
        "seed": config.seed,
        "status": "running",
        "started_at": _now(),
        "finished_at": None,
        "epochs_planned": config.train.epochs,
        "epochs_done": 0,
        "parameters": parameter_counts(model),
        "macs_per_image": total_macs(costs),
        "jit_compile": bool(model.jit_compile),
        "involution_op": _involution_op(model),
        "layers": [cost.to_dict() for cost in costs],
        "train_images": len(data.x_train),
        "test_images": len(data.x_test),
        "data_source": data.source,
        "environment": environment_info(),
    }
    recorder = RunRecorder(run_dir, summary, len(data.x_train))
    recorder.save()
    return PreparedRun(config, run_dir, model, train_data, validation_data, recorder)


def resolve_jit_compile(setting: bool | str, model: keras.Model) -> bool | str:
    """What `train.jit_compile` means for this model on this machine.

    "auto": off where an involution runs the native kernel, which XLA cannot
    compile; otherwise Keras' own "auto": off on CPU-only machines, where XLA
    slows this project's models (the article's CNN 166 against 101 ms a step,
    its involution model 62 against 38 ms; the pure-TF involution op compiles
    itself with XLA either way), and on where there is a GPU.
    """
    if setting != "auto":
        return bool(setting)
    return False if uses_native_involution(model) else "auto"


def _involution_op(model: keras.Model) -> str | None:
    if not involution_layers(model):
        return None
    return ", ".join(
        sorted({layer.resolved_implementation() for layer in involution_layers(model)})
    )


def train(
    config: ExperimentConfig,
    runs_root: Path,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Train `config`'s model into a new run folder under `runs_root`."""
    run = prepare_run(config, runs_root)
    return TrainResult(run.run_dir, run.fit(callbacks))


def _finish(model: keras.Model, recorder: RunRecorder, status: str) -> None:
    """Save the model and plots, then the final status: nothing is lost, even when stopped."""
    run_dir = recorder.run_dir
    temporary = run_dir / ".model.tmp.keras"  # Keras insists on the .keras suffix
    model.save(temporary)
    temporary.replace(run_dir / MODEL_FILE)
    plot_run(load_run(run_dir))
    recorder.summary.update(status=status, finished_at=_now())
    recorder.save()


def environment_info() -> dict[str, str | None]:
    versions = {}
    for package in ("tensorflow", "keras"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        **versions,
        "platform": platform.platform(),
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
