"""A real epoch against its bare steps: `invbench bench epoch`.

A run's epoch is more than its steps: the input pipeline and augmentation,
the callbacks (the NaN check, progress), validation, the checkpoint. To see
what that costs, the config trains for real (its data, pipelines, callbacks
and checkpoints, in a throwaway runs folder) while a callback times the same
compiled training step on one batch already in memory, before the first
epoch and after every epoch. Each epoch is compared with the blocks of bare
steps on either side of it, in one process, so the ratio holds on a machine
whose speed drifts.

The bare steps train the model on that batch; the callback puts every model
and optimizer variable back afterwards, so the epochs train as a run does.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import tensorflow as tf

from involution_bench.bench.timing import wait_for_result
from involution_bench.config import ExperimentConfig
from involution_bench.train.loop import prepare_run


@dataclass(frozen=True)
class EpochTiming:
    epoch: int
    steps: int
    epoch_seconds: float  # begin to end, validation and checkpoint included
    train_seconds: float  # the training steps, to the start of validation
    validation_seconds: float
    finish_seconds: float  # after validation: checkpoint, history, progress
    bare_step_milliseconds: float  # the mean of the medians before and after the epoch

    @property
    def bare_seconds(self) -> float:
        return self.steps * self.bare_step_milliseconds / 1e3

    @property
    def overhead(self) -> float:
        """The epoch's time over its steps' bare time: 1.05 is 5% overhead."""
        return self.epoch_seconds / self.bare_seconds

    @property
    def train_overhead(self) -> float:
        """The same for the training part alone: the pipeline and per-step callbacks."""
        return self.train_seconds / self.bare_seconds

    def to_dict(self) -> dict:
        return {**asdict(self), "overhead": self.overhead, "train_overhead": self.train_overhead}


@dataclass(frozen=True)
class EpochBench:
    config: str
    epochs: list[EpochTiming]

    @property
    def overhead(self) -> float:
        """The median over the epochs after the first (which traces and warms up)."""
        later = self.epochs[1:] or self.epochs
        return statistics.median(timing.overhead for timing in later)

    def to_dict(self) -> dict:
        return {
            "config": self.config,
            "overhead": self.overhead,
            "epochs": [timing.to_dict() for timing in self.epochs],
        }


class BareStepTimer(keras.callbacks.Callback):
    """Times the run's compiled step on one resident batch between epochs.

    Put it last among the callbacks, so that an epoch's time includes what
    every other callback does at its end (the checkpoint among them)."""

    def __init__(self, batch, steps: int, warmup: int = 2) -> None:
        super().__init__()
        self.batch, self.steps, self.warmup = batch, steps, warmup
        self.block_seconds: list[float] = []  # one median per block
        self.marks: list[dict[str, float]] = []

    def on_train_begin(self, logs=None):
        strategy = self.model.distribute_strategy
        dataset = tf.data.Dataset.from_tensors(self.batch).repeat()
        # The iterator kind fit steps on, so the same traced function serves both.
        self.iterator = iter(strategy.experimental_distribute_dataset(dataset))
        self._time_block()

    def on_epoch_begin(self, epoch, logs=None):
        self.marks.append({"begin": time.perf_counter()})

    def on_test_begin(self, logs=None):
        self.marks[-1]["test_begin"] = time.perf_counter()

    def on_test_end(self, logs=None):
        self.marks[-1]["test_end"] = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.marks[-1]["end"] = time.perf_counter()
        self.marks[-1]["steps"] = self.params["steps"]
        self._time_block()

    def _time_block(self) -> None:
        optimizer = self.model.optimizer
        if not optimizer.built:  # its slots appear at the first step: save them too
            optimizer.build(self.model.trainable_variables)
        saved = [variable.numpy() for variable in self._state()]
        seconds = []
        for index in range(self.warmup + self.steps):
            start = time.perf_counter()
            wait_for_result(self.model.train_function(self.iterator))
            if index >= self.warmup:
                seconds.append(time.perf_counter() - start)
        for variable, value in zip(self._state(), saved, strict=True):
            variable.assign(value)
        self.block_seconds.append(statistics.median(seconds))

    def _state(self) -> list:
        return [*self.model.variables, *self.model.optimizer.variables]

    def timings(self) -> list[EpochTiming]:
        timings = []
        for index, mark in enumerate(self.marks):
            if "end" not in mark:
                continue
            test_begin = mark.get("test_begin", mark["end"])
            test_end = mark.get("test_end", test_begin)
            around = self.block_seconds[index], self.block_seconds[index + 1]
            timings.append(
                EpochTiming(
                    epoch=index + 1,
                    steps=int(mark["steps"]),
                    epoch_seconds=mark["end"] - mark["begin"],
                    train_seconds=test_begin - mark["begin"],
                    validation_seconds=test_end - test_begin,
                    finish_seconds=mark["end"] - test_end,
                    bare_step_milliseconds=statistics.fmean(around) * 1e3,
                )
            )
        return timings


def bench_epoch(
    config: ExperimentConfig,
    steps: int = 20,
    callbacks: Callable[[], list[keras.callbacks.Callback]] = list,
    runs_root: Path | None = None,
) -> EpochBench:
    """Train `config` for its epochs in a throwaway folder (or `runs_root`), timing
    each epoch against `steps` bare steps before and after it. `callbacks` makes
    what else the run would train with (the CLI's progress display)."""
    if config.train.epochs < 2:
        raise ValueError("bench epoch needs 2 epochs or more: the first one warms up")
    with tempfile.TemporaryDirectory(prefix="invbench-bench-epoch-") as scratch:
        run = prepare_run(config, Path(runs_root or scratch))
        batch = next(iter(run.pipelines.train))
        timer = BareStepTimer(batch, steps)
        run.fit(callbacks=[*callbacks(), timer])
    return EpochBench(config.name, timer.timings())
