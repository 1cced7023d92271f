"""Multiply-accumulates (MACs) and parameters per layer of a built model, per image.

Each layer kind's rule is declared with the kind in `involution_bench.kinds`.

What is counted: every multiply-add of a convolution, dense layer or
involution, for one image at inference. An involution counts its kernel
generation (the 1x1 reduce and span convolutions) plus the K*K*C multiply-adds
per output position that apply the kernel. What is left out: biases,
batch norm (it folds into the preceding layer at inference), activations,
pooling, additions and reshapes. These are additions, comparisons or
per-element work, small next to the multiply-adds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import keras

from involution_bench.kinds import LAYER_KINDS, no_macs

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


# Layers that invbench adds itself (the input, a residual block's sum), beside
# the registered kinds; none multiplies.
STRUCTURAL_LAYERS = ("InputLayer", "Add")


@functools.cache
def mac_rules() -> dict[type, Callable[[Any, Shape, Shape], int]]:
    """Layer class -> its kind's MAC rule; the most specific class wins in `layer_macs`."""
    # Each kind's class and the Keras class it replaces (older models, baselines).
    rules = {cls: kind.macs for kind in LAYER_KINDS.values() for cls in kind.layer_classes()}
    rules.update({getattr(keras.layers, name): no_macs for name in STRUCTURAL_LAYERS})
    rules[keras.layers.Activation] = no_macs  # Dense/Conv2D `activation=` stays inside them
    return rules


def layer_macs(layer: keras.layers.Layer, input_shape: Shape, output_shape: Shape) -> int:
    rules = mac_rules()
    for cls in type(layer).__mro__:
        if cls in rules:
            return rules[cls](layer, input_shape, output_shape)
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
