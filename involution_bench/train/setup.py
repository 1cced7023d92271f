"""What new and resumed runs prepare alike: data, strategy, settings, pipelines, model.

Seeds and the data order follow the epoch to start from, so a resumed run
continues as if it had never stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

from involution_bench.config import ExperimentConfig, check_classes
from involution_bench.data import ImageData, load_dataset
from involution_bench.data.pipelines import Pipelines, make_datasets
from involution_bench.data.split import SplitProblem, with_validation
from involution_bench.errors import ConfigError
from involution_bench.models import prepare_for_xla, resolve_jit_compile
from involution_bench.train.distribute import Distribution, distribution
from involution_bench.train.losses import training_loss
from involution_bench.train.optimizers import make_optimizer


@dataclass
class Setup:
    """What new and resumed runs prepare alike before touching the run folder."""

    data: ImageData
    dist: Distribution
    pipelines: Pipelines
    model: keras.Model


def set_up(
    config: ExperimentConfig,
    first_epoch: int,
    make_model: Callable[[], keras.Model],
    dist: Distribution | None = None,
) -> Setup:
    """Data, strategy, process-wide settings, pipelines and the compiled model.

    Seeds and the data order follow the epoch to start from, so a resumed run
    continues as if it had never stopped.
    """
    data = load_data(config)
    dist = dist or distribution(config.train.distribute)
    keras.utils.set_random_seed(config.seed + first_epoch)
    set_op_determinism(config.train.deterministic)
    keras.mixed_precision.set_dtype_policy(config.train.precision)  # process-wide, set per run
    train = config.train
    # Batches of the global size: the strategy splits each among its replicas.
    pipelines = make_datasets(
        data, train.batch_size * dist.replicas, config.seed, first_epoch, augment=train.augment
    )
    with dist.strategy.scope():
        model = make_model()
        compile_model(model, config, pipelines.steps_per_epoch, dist.replicas)
    return Setup(data, dist, pipelines, model)


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


def load_data(config: ExperimentConfig) -> ImageData:
    """The config's dataset, checked against the model's outputs, its validation images
    set apart (`data.split`) and then limited as the config says."""
    data = config.data
    loaded = load_dataset(data.name, data.dir, tuple(config.model.input_shape))
    check_classes(config, loaded.num_classes)
    try:
        split = with_validation(loaded, data.validation, data.split_seed)
    except SplitProblem as exc:
        raise ConfigError(config.source, "data.validation", str(exc)) from None
    return split.limited(data.limit_train, data.limit_test)


def compile_model(model: keras.Model, config: ExperimentConfig, steps: int, replicas: int) -> None:
    """A restored model keeps its optimizer (and its state); a new one gets the config's."""
    jit_compile = resolve_jit_compile(config.train.jit_compile, model)
    if jit_compile is True:
        prepare_for_xla(model)
    optimizer = model.optimizer if model.compiled else None
    model.compile(
        optimizer=optimizer or make_optimizer(config.train, steps, replicas),
        loss=training_loss(config.train.label_smoothing),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
