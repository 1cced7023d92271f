"""Turning a validated model spec (a list of layer entries) into a `keras.Model`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import keras

from involution_bench.layers import Involution

LAYER_BUILDERS: dict[str, Callable[..., keras.layers.Layer]] = {
    "conv2d": keras.layers.Conv2D,
    "involution": Involution,
    "relu": keras.layers.ReLU,
    "max_pool": keras.layers.MaxPooling2D,
    "avg_pool": keras.layers.AveragePooling2D,
    "batch_norm": keras.layers.BatchNormalization,
    "flatten": keras.layers.Flatten,
    "dense": keras.layers.Dense,
    "dropout": keras.layers.Dropout,
    "global_avg_pool": keras.layers.GlobalAveragePooling2D,
}


def build_model(
    layers: Sequence[tuple[str, dict[str, Any]]],
    input_shape: Sequence[int],
    name: str = "model",
) -> keras.Model:
    """A functional model applying `layers` (kind, arguments) in order.

    The arguments are those `config.LAYER_KINDS` validates; they are named as
    the Keras constructors name them, so they pass straight through.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    outputs = inputs
    for kind, args in layers:
        outputs = LAYER_BUILDERS[kind](**args)(outputs)
    return keras.Model(inputs, outputs, name=name)


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable (e.g. batch-norm statistics) parameters."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    return {
        "total": trainable + non_trainable,
        "trainable": trainable,
        "non_trainable": non_trainable,
    }
