"""Fitting a model from a config into a run folder, and resuming one.

The run folder is created only once the config and data are known to be
good. After every epoch the model (with its optimizer state) is saved as a
checkpoint, then `history.json` and `summary.json` are rewritten, so a run
killed during epoch 7 keeps six finished epochs and can resume from the
sixth. The status turns `completed` only after the model and plots are on
disk.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from involution_bench.config import (
    ExperimentConfig,
    TrainConfig,
    config_to_dict,
    dump_config,
    load_config,
)
from involution_bench.data import Pipelines, load_cifar10, make_datasets, resolve_data_dir
from involution_bench.distribute import distribution, work_around_keras_multi_worker_bugs
from involution_bench.errors import ConfigError, RunError
from involution_bench.flops import layer_costs, total_macs
from involution_bench.losses import training_loss
from involution_bench.machine import cpu_description
from involution_bench.models import (
    build_model,
    involution_layers,
    load_saved_model,
    parameter_counts,
    prepare_for_xla,
    uses_native_involution,
)
from involution_bench.ops.native import loaded_build
from involution_bench.plots import plot_run
from involution_bench.runs import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    HISTORY_FILE,
    HISTORY_KEYS,
    MODEL_FILE,
    SUMMARY_FILE,
    RunLock,
    checkpoint_path,
    create_run_dir,
    ensure_root,
    load_run,
    write_atomic,
    write_json,
)

TENSORBOARD_DIR = "tensorboard"
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, batch: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, batch {batch}")


class RunRecorder(keras.callbacks.Callback):
    """Checkpoints the model, then rewrites history and summary, after every epoch.

    It also stops the run at the first batch whose loss is not finite (the
    epoch's running mean turns NaN with it), saying where.
    """

    def __init__(
        self,
        run_dir: Path,
        summary: dict[str, Any],
        train_images: int,
        history: dict[str, list[float]] | None = None,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.summary = summary
        self.train_images = train_images
        self.history = {key: list((history or {}).get(key, [])) for key in HISTORY_KEYS}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._epoch_start = time.perf_counter()
        self._train_end = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(self._epoch, batch + 1, float(loss))

    def on_test_begin(self, logs=None):
        self._train_end = time.perf_counter()  # validation runs inside the epoch

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        logs = logs or {}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            self.history[key].append(float(logs[key]))
        self.history["epoch_seconds"].append(now - self._epoch_start)
        self.history["train_seconds"].append((self._train_end or now) - self._epoch_start)
        done = epoch + 1
        save_model(self.model, checkpoint_path(self.run_dir, done))
        self.summary.update(epoch_statistics(self.history, self.train_images))
        self.summary["updated_at"] = _now()
        self.save()
        checkpoint_path(self.run_dir, done - 1).unlink(missing_ok=True)  # now superseded

    def save(self) -> None:
        write_json(self.run_dir / HISTORY_FILE, self.history)
        write_json(self.run_dir / SUMMARY_FILE, self.summary)


def tensorboard_callback(run_dir: Path) -> keras.callbacks.TensorBoard:
    """Per-epoch logs in the run folder; a resumed run appends to them."""
    return keras.callbacks.TensorBoard(
        log_dir=str(run_dir / TENSORBOARD_DIR), update_freq="epoch", profile_batch=0
    )


def save_model(model: keras.Model, path: Path) -> None:
    """Save via a temporary name, so a reader finds the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.keras")  # Keras insists on .keras
    model.save(temporary)
    temporary.replace(path)


def epoch_statistics(history: dict[str, list[float]], train_images: int) -> dict[str, Any]:
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
        "images_per_second": train_images * len(val_accuracy) / sum(history["train_seconds"]),
    }


@dataclass
class PreparedRun:
    """A run folder with its model and data ready: `fit` trains it."""

    config: ExperimentConfig
    run_dir: Path
    model: keras.Model
    pipelines: Pipelines
    recorder: RunRecorder
    lock: RunLock
    first_epoch: int = 0
    scratch: Path | None = None  # a non-chief worker's throwaway runs root

    def fit(self, callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict[str, Any]:
        """Train to the planned epochs; a stopped run is marked and keeps what it has."""
        try:
            return self._fit_and_finish(callbacks)
        finally:
            self.lock.release()
            if self.scratch:
                shutil.rmtree(self.scratch, ignore_errors=True)

    def _fit_and_finish(self, callbacks: Sequence[keras.callbacks.Callback]) -> dict[str, Any]:
        if self.config.train.tensorboard:
            callbacks = [*callbacks, tensorboard_callback(self.run_dir)]
        try:
            self.model.fit(
                self.pipelines.train,
                epochs=self.config.train.epochs,
                initial_epoch=self.first_epoch,
                steps_per_epoch=self.pipelines.steps_per_epoch,
                validation_data=self.pipelines.validation,
                callbacks=[self.recorder, *callbacks],
                shuffle=False,  # the pipeline orders every epoch itself
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
    data = _load_data(config)
    dist = distribution(config.train.distribute)
    keras.utils.set_random_seed(config.seed)
    set_op_determinism(config.train.deterministic)
    keras.mixed_precision.set_dtype_policy(config.train.precision)  # process-wide, set per run
    pipelines = _pipelines(data, config, replicas=dist.replicas)
    with dist.strategy.scope():
        model = build_model(config.layers, config.model.input_shape, name=config.name)
        _compile(model, config, pipelines.steps_per_epoch, replicas=dist.replicas)
    work_around_keras_multi_worker_bugs(dist, model, pipelines.train)
    costs = layer_costs(model)

    # Workers other than the chief train in a scratch folder, dropped at the end.
    scratch = None if dist.is_chief else Path(tempfile.mkdtemp(prefix="invbench-worker-"))
    run_dir = create_run_dir(scratch or runs_root, config.name)
    lock = RunLock(run_dir).acquire()
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
        "layers": [cost.to_dict() for cost in costs],
        "jit_compile": bool(model.jit_compile),
        "precision": config.train.precision,
        "distribute": dist.describe(),
        "global_batch_size": config.train.batch_size * dist.replicas,
        "involution_op": _involution_op(model),
        "train_images": len(data.x_train),
        "test_images": len(data.x_test),
        "data_source": data.source,
        "environment": environment_info(),
        **_process_info(),
    }
    recorder = RunRecorder(run_dir, summary, len(data.x_train))
    recorder.save()
    return PreparedRun(config, run_dir, model, pipelines, recorder, lock, scratch=scratch)


def prepare_resume(run_dir: Path, overrides: Sequence[str] = ()) -> PreparedRun:
    """Continue a stopped run from its last finished epoch, as if it had never stopped.

    Only `train.epochs` may differ from the run's config. The model comes back
    with its optimizer state from the last checkpoint, and the data order of
    every later epoch is the one the run would have had. The run folder stays
    locked to this process until `fit` returns, so a second resume is refused.
    """
    _refuse_completed(load_run(run_dir))
    lock = RunLock(run_dir).acquire()
    try:
        return _prepare_locked_resume(run_dir, overrides, lock)
    except BaseException:
        lock.release()
        raise


def _refuse_completed(run) -> None:
    if run.status == "completed":
        raise RunError(str(run.path), f"is already completed ({run.epochs_done} epochs)")


def _prepare_locked_resume(run_dir: Path, overrides: Sequence[str], lock: RunLock) -> PreparedRun:
    run = load_run(run_dir)  # read again: another process may have finished it meanwhile
    _refuse_completed(run)
    if run.status == "running":
        raise RunError(str(run_dir), f"is still running (process {run.summary.get('pid')})")
    saved = load_config(run_dir / CONFIG_FILE)
    config = load_config(run_dir / CONFIG_FILE, overrides)
    _check_only_epochs_differ(saved, config, run_dir)
    done = run.epochs_done
    if config.train.epochs <= done:
        raise ConfigError(
            "--set", "train.epochs", f"{config.train.epochs} is not more than the {done} done"
        )
    data = _load_data(config)
    dist = _resumable_distribution(run, config)
    keras.utils.set_random_seed(config.seed + done)
    set_op_determinism(config.train.deterministic)
    keras.mixed_precision.set_dtype_policy(config.train.precision)
    pipelines = _pipelines(data, config, first_epoch=done, replicas=dist.replicas)
    with dist.strategy.scope():
        if done:
            missing = "is missing: the run cannot be resumed from its last epoch"
            model = load_saved_model(checkpoint_path(run_dir, done), missing)
        else:
            model = build_model(config.layers, config.model.input_shape, name=config.name)
        optimizer = model.optimizer if done else None
        _compile(model, config, pipelines.steps_per_epoch, optimizer, replicas=dist.replicas)
    summary = dict(run.summary)
    summary.update(
        status="running",
        finished_at=None,
        error=None,
        epochs_planned=config.train.epochs,
        resumed=[*summary.get("resumed", []), {"at": _now(), "from_epoch": done}],
        **_process_info(),
    )
    history = {key: values[:done] for key, values in run.history.items()}
    write_atomic(run_dir / CONFIG_FILE, dump_config(config))
    recorder = RunRecorder(run_dir, summary, len(data.x_train), history)
    recorder.save()
    return PreparedRun(config, run_dir, model, pipelines, recorder, lock, first_epoch=done)


def _resumable_distribution(run, config: ExperimentConfig):
    """The run's strategy, if it can go on here with the same global batch."""
    if config.train.distribute == "multi_worker":
        raise RunError(
            str(run.path),
            "was trained with train.distribute multi_worker, which cannot be resumed yet "
            f"(its checkpoints stay in {CHECKPOINTS_DIR}/)",
        )
    dist = distribution(config.train.distribute)
    trained_on = run.summary.get("distribute", {}).get("replicas", 1)
    if trained_on != dist.replicas:
        raise RunError(
            str(run.path),
            f"was trained on {trained_on} replicas and this machine has {dist.replicas}: "
            "the global batch and learning rate would change",
        )
    return dist


def set_op_determinism(enabled: bool) -> None:
    """Op determinism is process-wide: each run sets it from its own config.

    With it on, Keras also turns XLA off for the model (not every XLA op has
    a deterministic kernel); the pure-TF involution op still compiles itself.
    """
    from tensorflow.python.framework import config as tf_config  # "disable" is not public

    if enabled:
        tf.config.experimental.enable_op_determinism()
    elif tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()


def _pipelines(
    data, config: ExperimentConfig, first_epoch: int = 0, replicas: int = 1
) -> Pipelines:
    """Batches of the global size: the strategy splits each among its replicas."""
    train = config.train
    return make_datasets(
        data, train.batch_size * replicas, config.seed, first_epoch, augment=train.augment
    )


def _load_data(config: ExperimentConfig):
    return load_cifar10(resolve_data_dir(config.data.dir)).limited(
        config.data.limit_train, config.data.limit_test
    )


def learning_rate_schedule(train: TrainConfig, steps_per_epoch: int, replicas: int = 1):
    """The configured learning rate: a number, or a schedule over optimizer steps.

    With several replicas it is scaled by their count (see distribute.py).
    """
    peak = train.learning_rate * replicas
    if train.schedule == "constant":
        return peak
    warmup = train.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=(train.epochs - train.warmup_epochs) * steps_per_epoch,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(
    train: TrainConfig, steps_per_epoch: int, replicas: int = 1
) -> keras.optimizers.Optimizer:
    schedule = learning_rate_schedule(train, steps_per_epoch, replicas)
    options: dict[str, Any] = {"learning_rate": schedule}
    if train.weight_decay is not None:
        options["weight_decay"] = train.weight_decay
    if train.optimizer == "sgd":
        options.update(momentum=train.momentum, nesterov=train.nesterov)
    return OPTIMIZERS[train.optimizer](**options)


def _compile(
    model: keras.Model,
    config: ExperimentConfig,
    steps_per_epoch: int,
    optimizer=None,
    replicas: int = 1,
) -> None:
    jit_compile = resolve_jit_compile(config.train.jit_compile, model)
    if jit_compile is True:
        prepare_for_xla(model)
    model.compile(
        optimizer=optimizer or make_optimizer(config.train, steps_per_epoch, replicas),
        loss=training_loss(config.train.label_smoothing),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


def _check_only_epochs_differ(saved: ExperimentConfig, wanted: ExperimentConfig, where) -> None:
    old, new = _flatten(config_to_dict(saved)), _flatten(config_to_dict(wanted))
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    changed = [key for key in changed if key != "train.epochs"]
    if changed:
        raise ConfigError(
            "--set", changed[0], f"differs from the run's config in {where}; only train.epochs may"
        )


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    flat = {}
    for key, value in items:
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _process_info() -> dict[str, Any]:
    """Who is training the run, so a run whose process died is not shown running forever."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


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
    """Save the model and plots, then the final status: nothing is lost, even when stopped.

    A stopped run keeps its last checkpoint to resume from; a completed one
    needs only `model.keras`.
    """
    run_dir = recorder.run_dir
    last = checkpoint_path(run_dir, len(recorder.history["val_accuracy"]))
    if status == "completed" and last.is_file():
        last.replace(run_dir / MODEL_FILE)  # the last epoch's checkpoint is the trained model
    else:
        save_model(model, run_dir / MODEL_FILE)  # a stop mid-epoch keeps the newest weights
    if recorder.history["val_accuracy"]:
        plot_run(load_run(run_dir))
    recorder.summary.update(status=status, finished_at=_now())
    recorder.save()
    if status == "completed":
        shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)


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
        **cpu_description(),
        "native_build": loaded_build(),
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
