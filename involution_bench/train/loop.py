"""Fitting a model from a config into a run folder, and resuming one.

load -> build -> compile -> fit, with one setup (`train.setup.set_up`) shared by new
and resumed runs. The run folder is created only once the config and data
are known to be good, and `runs.RunWriter` owns everything written into it:
after every epoch the model (with its optimizer state) is saved as a
checkpoint, then history and summary are rewritten, so a run killed during
epoch 7 keeps six finished epochs and can resume from the sixth. The status
turns `completed` only after the model and plots are on disk.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from involution_bench.analysis.plots import plot_run
from involution_bench.config import (
    ExperimentConfig,
    config_to_dict,
    dump_config,
    flatten_config,
    load_config,
)
from involution_bench.data import ImageData
from involution_bench.data.pipelines import Pipelines
from involution_bench.errors import ConfigError, RunError
from involution_bench.models import (
    build_model,
    involution_op_layers,
    layer_costs,
    load_saved_model,
    parameter_counts,
    total_macs,
)
from involution_bench.ops.native import loaded_build
from involution_bench.robustness.run import after_training
from involution_bench.runs import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    MODEL_FILE,
    Run,
    RunLock,
    RunStatus,
    RunSummary,
    RunWriter,
    checkpoint_path,
    create_run_dir,
    ensure_root,
    load_run,
)
from involution_bench.system.interrupts import (
    batch_end_callback,
    interrupt_was_forced,
    interrupts_between_batches,
)
from involution_bench.system.provenance import environment_info, now_iso, process_info
from involution_bench.train.callbacks import EpochRecorder, log_hparams, tensorboard_callback
from involution_bench.train.distribute import (
    Distribution,
    distribution,
    gpu_names,
    work_around_keras_multi_worker_bugs,
)
from involution_bench.train.setup import set_up
from involution_bench.train.testing import final_test


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    summary: RunSummary


@dataclass
class PreparedRun:
    """A run folder with its model and data ready: `fit` trains it."""

    config: ExperimentConfig
    run_dir: Path
    model: keras.Model
    pipelines: Pipelines
    data: ImageData  # its test images are read once, when the run completes
    writer: RunWriter
    lock: RunLock
    first_epoch: int = 0
    scratch: Path | None = None  # a non-chief worker's throwaway runs root

    def fit(self, callbacks: Sequence[keras.callbacks.Callback] = ()) -> RunSummary:
        """Train to the planned epochs; a stopped run is marked and keeps what it has."""
        try:
            return self._fit_and_finish(callbacks)
        finally:
            self.lock.release()
            if self.scratch:
                shutil.rmtree(self.scratch, ignore_errors=True)

    def _fit_and_finish(self, callbacks: Sequence[keras.callbacks.Callback]) -> RunSummary:
        if self.config.train.tensorboard:
            callbacks = [*callbacks, tensorboard_callback(self.writer.folder)]
        try:
            if self.first_epoch < self.config.train.epochs:  # else it stopped while finishing
                with interrupts_between_batches():
                    self.model.fit(
                        self.pipelines.train,
                        epochs=self.config.train.epochs,
                        initial_epoch=self.first_epoch,
                        steps_per_epoch=self.pipelines.steps_per_epoch,
                        validation_data=self.pipelines.validation,
                        callbacks=[
                            EpochRecorder(self.writer, self.config.train),
                            *callbacks,
                            batch_end_callback(),  # last: a signal waits for the batch's end
                        ],
                        shuffle=False,  # the pipeline orders every epoch itself
                        verbose=0,
                    )
        except KeyboardInterrupt:
            self._finish(RunStatus.interrupted)
            raise
        except Exception as exc:
            if interrupt_was_forced():  # a second Ctrl-C, caught amid Keras' scopes
                self._finish(RunStatus.interrupted)
                raise KeyboardInterrupt from None
            self._finish(RunStatus.failed, error=describe_failure(exc))
            raise
        self._finish(RunStatus.completed)
        return self.writer.summary

    def _finish(self, status: RunStatus, error: str | None = None) -> None:
        """Model, then plots, then the status: nothing is lost, even when stopped.

        A write that fails (a full disk, a lost permission) leaves the run failed,
        naming the file and the cause, and is raised once the status is written;
        `--resume` finishes the run when the disk has room again.
        """
        finishing, failure = status, None
        try:
            self.writer.place_model(status, self.model.save)
            # Every worker tests, as every worker trained: the last model's pass is collective.
            if status == RunStatus.completed:
                for key, value in final_test(self.run_dir, self.model, self.data).items():
                    setattr(self.writer.summary, key, value)
            if self.writer.epochs_done:
                plot_run(load_run(self.run_dir))
        except OSError as exc:
            failure = exc
            if status == RunStatus.completed:
                status, error = RunStatus.failed, describe_failure(exc)
        if failure is None and status == RunStatus.completed and self._wants_robustness():
            status, error = self._robustness()
        self.writer.mark(status, error)
        if self.config.train.tensorboard:
            log_hparams(self.writer.folder, config_to_dict(self.config), self.writer.summary)
        if failure is not None and finishing == RunStatus.completed:
            raise failure

    def _wants_robustness(self) -> bool:
        return self.config.train.robustness and not self.scratch

    def _robustness(self) -> tuple[RunStatus, str | None]:
        """`train.robustness`: the run is complete once its suite is written too; a
        stopped suite leaves it interrupted (or failed), and `--resume` runs it again."""
        try:
            after_training(self.run_dir, self.config.name, self.model, self.data)
        except KeyboardInterrupt:
            self.writer.mark(RunStatus.interrupted)
            raise
        except Exception as exc:
            if interrupt_was_forced():
                self.writer.mark(RunStatus.interrupted)
                raise KeyboardInterrupt from None
            self.writer.mark(RunStatus.failed, f"robustness: {describe_failure(exc)}")
            raise
        return RunStatus.completed, None


def describe_failure(exc: BaseException) -> str:
    """The summary's `error`: a failed write as its file and cause, else the exception."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def prepare_run(config: ExperimentConfig, runs_root: Path) -> PreparedRun:
    """Load data and build the model, then create the run folder: bad input leaves none."""
    ensure_root(runs_root)
    setup = set_up(
        config, 0, lambda: build_model(config.layers, config.model.input_shape, name=config.name)
    )
    model, dist = setup.model, setup.dist
    work_around_keras_multi_worker_bugs(dist, model, setup.pipelines.train)
    costs = layer_costs(model)

    # Workers other than the chief train in a scratch folder, dropped at the end.
    scratch = None if dist.is_chief else Path(tempfile.mkdtemp(prefix="invbench-worker-"))
    run_dir = create_run_dir(scratch or runs_root, config.name)
    lock = RunLock(run_dir).acquire()
    summary = RunSummary(
        name=config.name,
        seed=config.seed,
        status=RunStatus.running,
        started_at=now_iso(),
        epochs_planned=config.train.epochs,
        parameters=parameter_counts(model),
        macs_per_image=total_macs(costs),
        layers=[cost.to_dict() for cost in costs],
        jit_compile=bool(model.jit_compile),
        precision=config.train.precision,
        distribute=dist.describe(),
        global_batch_size=config.train.batch_size * dist.replicas,
        involution_op=_involution_op(model),
        dataset=config.data.name,
        validation=setup.data.validation,
        validation_images=len(setup.data.y_val),
        train_images=len(setup.data.x_train),
        test_images=len(setup.data.x_test),
        data_source=setup.data.source,
        environment=environment_info(native_build=loaded_build(), gpus=gpu_names()),
        **process_info(),
    )
    writer = RunWriter(run_dir, summary, len(setup.data.x_train))
    writer.write_config(dump_config(config))
    writer.save()
    return PreparedRun(
        config, run_dir, model, setup.pipelines, setup.data, writer, lock, scratch=scratch
    )


def prepare_resume(run_dir: Path, overrides: Sequence[str] = ()) -> PreparedRun:
    """Continue a stopped run from its last finished epoch, as if it had never stopped.

    Only `train.epochs` may differ from the run's config. A run that stopped after
    its last epoch, while testing or in its robustness suite, is finished without
    training again. The model comes back
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


def _refuse_completed(run: Run) -> None:
    if run.status == RunStatus.completed:
        raise RunError(str(run.path), f"is already completed ({run.epochs_done} epochs)")


def _prepare_locked_resume(run_dir: Path, overrides: Sequence[str], lock: RunLock) -> PreparedRun:
    run = load_run(run_dir)  # read again: another process may have finished it meanwhile
    _refuse_completed(run)
    if run.status == RunStatus.running:
        raise RunError(str(run_dir), f"is still running (process {run.summary.pid})")
    saved = load_config(run_dir / CONFIG_FILE)
    config = load_config(run_dir / CONFIG_FILE, overrides)
    _check_only_epochs_differ(saved, config, run_dir)
    if run.summary.validation is None and config.data.validation is None:
        # Written before validation splits existed: it chose on the test set, and goes on so.
        data = config.data.model_copy(update={"validation": "test"})
        config = config.model_copy(update={"data": data})
    done = run.epochs_done
    # A run stopped after its last epoch (in its test or robustness pass) only finishes.
    finishing = done == config.train.epochs == run.summary.epochs_planned
    if config.train.epochs <= done and not finishing:
        raise ConfigError(
            "--set", "train.epochs", f"{config.train.epochs} is not more than the {done} done"
        )

    def restore() -> keras.Model:
        if not done:
            return build_model(config.layers, config.model.input_shape, name=config.name)
        missing = "is missing: the run cannot be resumed from its last epoch"
        last = checkpoint_path(run_dir, done)
        if finishing and not last.is_file():  # it became model.keras before the stop
            last = run_dir / MODEL_FILE
        return load_saved_model(last, missing)

    setup = set_up(config, done, restore, _resumable_distribution(run, config))
    summary = run.summary.model_copy(deep=True)
    summary.status, summary.finished_at, summary.error = RunStatus.running, None, None
    summary.epochs_planned = config.train.epochs
    summary.resumed = [*summary.resumed, {"at": now_iso(), "from_epoch": done}]
    for key, value in process_info().items():
        setattr(summary, key, value)
    history = {key: values[:done] for key, values in run.history.items()}
    writer = RunWriter(run_dir, summary, len(setup.data.x_train), history)
    writer.write_config(dump_config(config))
    writer.save()
    return PreparedRun(
        config, run_dir, setup.model, setup.pipelines, setup.data, writer, lock, done
    )


def _resumable_distribution(run: Run, config: ExperimentConfig) -> Distribution:
    """The run's strategy, if it can go on here with the same global batch."""
    if config.train.distribute == "multi_worker":
        raise RunError(
            str(run.path),
            "was trained with train.distribute multi_worker, which cannot be resumed yet "
            f"(its checkpoints stay in {CHECKPOINTS_DIR}/)",
        )
    dist = distribution(config.train.distribute)
    trained_on = (run.summary.distribute or {}).get("replicas", 1)
    if trained_on != dist.replicas:
        raise RunError(
            str(run.path),
            f"was trained on {trained_on} replicas and this machine has {dist.replicas}: "
            "the global batch and learning rate would change",
        )
    return dist


def _check_only_epochs_differ(saved: ExperimentConfig, wanted: ExperimentConfig, where) -> None:
    old, new = flatten_config(config_to_dict(saved)), flatten_config(config_to_dict(wanted))
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    changed = [key for key in changed if key != "train.epochs"]
    if changed:
        raise ConfigError(
            "--set", changed[0], f"differs from the run's config in {where}; only train.epochs may"
        )


def _involution_op(model: keras.Model) -> str | None:
    layers = involution_op_layers(model)
    if not layers:
        return None
    return ", ".join(sorted({layer.resolved_implementation() for layer in layers}))


def train(
    config: ExperimentConfig,
    runs_root: Path,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Train `config`'s model into a new run folder under `runs_root`."""
    run = prepare_run(config, runs_root)
    return TrainResult(run.run_dir, run.fit(callbacks))
