"""Timing whole models against their baselines: `invbench bench model`.

The baseline of a model with a kind that declares one (involution: the
article's formulation) is the same model with that kind's baseline layer;
a model without one is timed against itself with Keras' defaults.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import keras
import numpy as np

from involution_bench.bench.timing import interleaved_medians
from involution_bench.config import ExperimentConfig, kind_names
from involution_bench.kinds import LAYER_KINDS
from involution_bench.models import (
    build_model,
    layer_costs,
    prepare_for_xla,
    resolve_jit_compile,
    total_macs,
)
from involution_bench.train.losses import training_loss
from involution_bench.train.optimizers import OPTIMIZERS, make_optimizer

# Steps per epoch for a schedule's shape; its values do not change a step's cost.
SCHEDULE_STEPS = 100

TRAINING_MAC_FACTOR = 3  # forward, input gradient, weight gradient


@dataclass(frozen=True)
class ModelTiming:
    config: str
    variant: str
    jit_compile: bool
    step_milliseconds: float  # one training step at the config's batch size
    train_images_per_second: float
    inference_images_per_second: float
    speedup: float | None  # the baseline's step time over this one's; None when not timed
    macs_per_image: int  # forward multiply-adds (as `invbench info` counts them)
    # Training multiply-adds per second: forward plus the two backward passes
    # (input and weight gradients), about 3x the forward count, per image.
    train_gmacs_per_second: float
    # Each round's median step; step_milliseconds is their median.
    round_step_milliseconds: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


def model_variants(config: ExperimentConfig) -> list[tuple[str, keras.Model, bool | None]]:
    """(variant, model, jit_compile): the baseline first, then what invbench trains.

    The baseline also steps with Keras' own optimizer class where invbench has its
    own (SGD): `bench_model` compiles the first variant so."""
    layers, shape = config.layers, config.model.input_shape
    ours, jit = invbench_model(config)
    swapped = [LAYER_KINDS[name] for name in kind_names(layers) if LAYER_KINDS[name].baseline]
    labels = [kind.baseline.label for kind in swapped]
    if has_own_optimizer(config):
        labels.append(f"keras {config.train.optimizer}")
    if swapped:  # residual blocks included
        builders = {kind.name: kind.baseline_class() for kind in swapped}
        baseline = build_model(layers, shape, config.name, builders=builders)
        # The article trained without XLA; its extract_patches form gains little from it.
        return [(", ".join(labels), baseline, False), ("invbench", ours, jit)]
    keras_default = build_model(layers, shape, config.name)
    return [(", ".join(labels) or "keras defaults", keras_default, None), ("invbench", ours, jit)]


def invbench_model(config: ExperimentConfig) -> tuple[keras.Model, bool | str]:
    """The model invbench trains for the config, at its precision, and its XLA setting."""
    keras.mixed_precision.set_dtype_policy(config.train.precision)  # as training would
    model = build_model(config.layers, config.model.input_shape, config.name)
    jit = resolve_jit_compile(config.train.jit_compile, model)
    if jit is True:
        prepare_for_xla(model)  # as training does: nothing native inside XLA
    return model, jit


def compile_variant(model: keras.Model, config: ExperimentConfig, jit, keras_own: bool) -> None:
    """Compiled as the config trains: its optimizer (Keras' own class for a baseline),
    schedule and loss. `jit` None is Keras' own default ("auto")."""
    model.compile(
        optimizer=make_optimizer(config.train, SCHEDULE_STEPS, keras_own=keras_own),
        loss=training_loss(config.train.label_smoothing),
        jit_compile="auto" if jit is None else jit,
    )


def has_own_optimizer(config: ExperimentConfig) -> bool:
    """Whether invbench trains this config with its own optimizer class, not Keras'."""
    return not OPTIMIZERS[config.train.optimizer].__module__.startswith("keras")


def bench_model(config: ExperimentConfig, steps: int = 10, warmup: int = 3) -> list[ModelTiming]:
    """Training-step time and inference speed of a config's model against its baseline."""
    return bench_models([config], steps, warmup)


@dataclass(frozen=True)
class _Prepared:
    config: ExperimentConfig
    variant: str
    model: keras.Model
    images: np.ndarray
    labels: np.ndarray
    macs: int


def bench_models(
    configs: Sequence[ExperimentConfig],
    steps: int = 10,
    warmup: int = 3,
    rounds: int = 1,
    baselines: bool = True,
) -> list[ModelTiming]:
    """`bench_model` of several configs, every model of every config timed in turns
    (one step of each per turn), so that ratios between configs hold too; `rounds`
    times `steps` turns, each round's medians kept, so a ratio's spread shows.
    Without `baselines`, only what invbench trains is built and timed: for ratios
    between configs, several times faster where a baseline is slow (the
    article's RedNet formulation takes about six of invbench's steps)."""
    prepared = []
    for config in configs:
        batch = config.train.batch_size
        rng = np.random.default_rng(config.seed)
        images = rng.random((batch, *config.model.input_shape), dtype=np.float32)
        variants = model_variants(config) if baselines else [("invbench", *invbench_model(config))]
        classes = variants[0][1].output_shape[-1]  # the dataset's classes, as the config says
        labels = rng.integers(0, classes, batch).astype(np.int32)
        for variant, model, jit in variants:
            macs = total_macs(layer_costs(model))
            compile_variant(model, config, jit, keras_own=variant != "invbench")
            prepared.append(_Prepared(config, variant, model, images, labels, macs))
    steps_of = {
        n: lambda p=p: p.model.train_on_batch(p.images, p.labels) for n, p in enumerate(prepared)
    }
    round_seconds = [
        interleaved_medians(steps_of, steps, warmup if index == 0 else 0) for index in range(rounds)
    ]
    step_seconds = {n: statistics.median(one[n] for one in round_seconds) for n in steps_of}
    infer_seconds = interleaved_medians(
        {n: lambda p=p: p.model.predict_on_batch(p.images) for n, p in enumerate(prepared)},
        steps,
        warmup,
    )
    baseline_steps = {}  # each config's baseline variant, where timed
    results = []
    for n, item in enumerate(prepared):
        batch, step = item.config.train.batch_size, step_seconds[n]
        if item.variant != "invbench":
            baseline_steps[id(item.config)] = step
        baseline = baseline_steps.get(id(item.config))
        results.append(
            ModelTiming(
                config=item.config.name,
                variant=item.variant,
                jit_compile=bool(item.model.jit_compile),
                step_milliseconds=step * 1e3,
                train_images_per_second=batch / step,
                inference_images_per_second=batch / infer_seconds[n],
                speedup=None if baseline is None else baseline / step,
                macs_per_image=item.macs,
                train_gmacs_per_second=TRAINING_MAC_FACTOR * item.macs * batch / step / 1e9,
                round_step_milliseconds=tuple(one[n] * 1e3 for one in round_seconds),
            )
        )
    return results


class PairRatio(NamedTuple):
    config: str
    first: str  # the first config, which every other is set against
    time_ratio: float  # step time, the median of the rounds' ratios
    macs_ratio: float
    round_ratios: tuple[float, ...]  # each round's ratio of median steps


def pair_ratios(timings: Sequence[ModelTiming]) -> list[PairRatio]:
    """Each config's invbench variant against the first config's: does time follow
    the multiply-adds? Rounds are paired: both steps of a round met the same machine."""
    ours = [timing for timing in timings if timing.variant == "invbench"]
    if len(ours) < 2:
        return []
    first = ours[0]
    pairs = []
    for timing in ours[1:]:
        rounds = tuple(
            mine / theirs
            for mine, theirs in zip(
                timing.round_step_milliseconds, first.round_step_milliseconds, strict=True
            )
        ) or (timing.step_milliseconds / first.step_milliseconds,)
        macs = timing.macs_per_image / first.macs_per_image
        median = statistics.median(rounds)
        pairs.append(PairRatio(timing.config, first.config, median, macs, rounds))
    return pairs
