"""Multiply-accumulates (MACs) and parameters per layer of a built model, per image.

What is counted: every multiply-add of a convolution, dense layer or
involution, for one image at inference. An involution counts its kernel
generation (the 1x1 reduce and span convolutions) plus the K*K*C multiply-adds
per output position that apply the kernel. What is left out: biases,
batch norm (it folds into the preceding layer at inference), activations,
pooling, additions and reshapes. These are additions, comparisons or
per-element work, small next to the multiply-adds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import keras

from involution_bench.ops import Involution

Shape = tuple  # a Keras shape with the batch dimension first (None)


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    output_shape: tuple[int, ...]  # without the batch dimension
    parameters: int
    macs: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "output_shape": list(self.output_shape)}


def conv2d_macs(layer: keras.layers.Conv2D, input_shape: Shape, output_shape: Shape) -> int:
    kernel_height, kernel_width = layer.kernel_size
    per_output = kernel_height * kernel_width * input_shape[-1] // layer.groups
    return math.prod(output_shape[1:]) * per_output


def dense_macs(layer: keras.layers.Dense, input_shape: Shape, output_shape: Shape) -> int:
    return math.prod(output_shape[1:]) * input_shape[-1]


def involution_macs(layer: Involution, input_shape: Shape, output_shape: Shape) -> int:
    positions = math.prod(output_shape[1:-1])
    channels = input_shape[-1]
    hidden = layer.reduce.filters
    kernel_values = layer.kernel_size**2 * layer.groups
    generation = positions * (channels * hidden + hidden * kernel_values)
    return generation + positions * layer.kernel_size**2 * channels


def no_macs(layer: keras.layers.Layer, input_shape: Shape, output_shape: Shape) -> int:
    return 0


# The most specific class wins; a layer with no rule is an error, not a silent zero.
MAC_RULES: dict[type, Callable[[Any, Shape, Shape], int]] = {
    keras.layers.Conv2D: conv2d_macs,
    keras.layers.Dense: dense_macs,
    Involution: involution_macs,
    keras.layers.InputLayer: no_macs,
    keras.layers.ReLU: no_macs,
    keras.layers.Activation: no_macs,
    keras.layers.MaxPooling2D: no_macs,
    keras.layers.AveragePooling2D: no_macs,
    keras.layers.GlobalAveragePooling2D: no_macs,
    keras.layers.BatchNormalization: no_macs,
    keras.layers.Flatten: no_macs,
    keras.layers.Dropout: no_macs,
    keras.layers.Add: no_macs,
}


def layer_macs(layer: keras.layers.Layer, input_shape: Shape, output_shape: Shape) -> int:
    for cls in type(layer).__mro__:
        if cls in MAC_RULES:
            return MAC_RULES[cls](layer, input_shape, output_shape)
    raise ValueError(
        f"no multiply-accumulate rule for layer {layer.name!r} ({type(layer).__name__})"
    )


def layer_costs(model: keras.Model) -> list[LayerCost]:
    """One row per layer of a functional model (the input layer left out), in graph order."""
    costs = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        input_shape = _single_shape(layer.input)
        output_shape = _single_shape(layer.output)
        costs.append(
            LayerCost(
                name=layer.name,
                kind=type(layer).__name__,
                output_shape=tuple(output_shape[1:]),
                parameters=layer.count_params(),
                macs=layer_macs(layer, input_shape, output_shape),
            )
        )
    return costs


def total_macs(costs: list[LayerCost]) -> int:
    return sum(cost.macs for cost in costs)


def _single_shape(tensors) -> Shape:
    # Layers with several inputs (an Add) have the same shape on each.
    tensor = tensors[0] if isinstance(tensors, list | tuple) else tensors
    return tuple(tensor.shape)


def human_count(value: int) -> str:
    """8225408 -> '8.23 M', 65344 -> '65.3 K'."""
    for threshold, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= threshold:
            return f"{value / threshold:.3g} {unit}"
    return str(value)
