"""Every layer kind a config can name, declared once.

A kind is its arguments (a pydantic model, named as the Keras constructor
names them), its output-shape rule (used to check configs before any
TensorFlow work), its Keras builder and its multiply-accumulate rule.
`config.py`, `models.py` and `flops.py` all read this table, so adding a
kind means adding one `LayerKind` here, plus the layer's own file when it is
new. `tests/test_layer_kinds.py` checks that the shape rule, the builder and
the MAC rule of every kind agree on a built model.

Nothing here imports TensorFlow at module level: builders are looked up
when a model is built, so configs validate (and the CLI starts) without it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from pydantic import Field

from involution_bench.schema import (
    Activation,
    Float,
    LayerName,
    PositiveFloat,
    PositiveInt,
    Section,
)

# ---- arguments: names follow the Keras constructors ----


class Conv2DArgs(Section):
    filters: PositiveInt
    kernel_size: PositiveInt = 3
    strides: PositiveInt = 1
    padding: Literal["same", "valid"] = "valid"
    activation: Activation = None
    use_bias: bool = True
    name: LayerName = None


class InvolutionArgs(Section):
    kernel_size: PositiveInt = 3
    stride: PositiveInt = 1
    groups: PositiveInt = 1
    reduction_ratio: PositiveInt = 4
    name: LayerName = None


class LocalAttentionArgs(Section):
    kernel_size: PositiveInt = 3
    heads: PositiveInt = 1
    stride: PositiveInt = 1
    name: LayerName = None


class PoolArgs(Section):
    pool_size: PositiveInt = 2
    strides: PositiveInt | None = None
    padding: Literal["same", "valid"] = "valid"
    name: LayerName = None


class BatchNormArgs(Section):
    momentum: Annotated[Float, Field(ge=0, lt=1)] = 0.99
    epsilon: PositiveFloat = 1e-3
    name: LayerName = None


class DenseArgs(Section):
    units: PositiveInt
    activation: Activation = None
    use_bias: bool = True
    name: LayerName = None


class DropoutArgs(Section):
    rate: Annotated[Float, Field(ge=0, lt=1)]
    name: LayerName = None


class NameOnlyArgs(Section):
    name: LayerName = None


# ---- shapes ----


@dataclass(frozen=True)
class Shape:
    """A tensor's shape per image: an image (height, width, channels), or flat features."""

    height: int
    width: int
    channels: int
    features: int | None = None  # set once the tensor is flat

    @property
    def flat(self) -> bool:
        return self.features is not None

    def describe(self) -> str:
        return (
            f"{self.features} features"
            if self.flat
            else f"{self.height}x{self.width}x{self.channels}"
        )


class ShapeProblem(ValueError):
    """A layer that cannot take this input; `argument` names the culprit, when one is."""

    def __init__(self, problem: str, argument: str | None = None) -> None:
        super().__init__(problem)
        self.argument = argument


def windowed(size: int, window: int, stride: int, padding: str) -> int:
    """Output length of a convolution or pooling window along one axis."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - window) // stride + 1


def conv2d_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    size, stride, padding = args["kernel_size"], args["strides"], args["padding"]
    return Shape(
        windowed(shape.height, size, stride, padding),
        windowed(shape.width, size, stride, padding),
        args["filters"],
    )


def odd_kernel_strided(shape: Shape, args: dict[str, Any]) -> Shape:
    """An odd K x K window, same padding, stride args["stride"], channels kept."""
    if args["kernel_size"] % 2 == 0:
        raise ShapeProblem("must be odd", "kernel_size")
    stride = args["stride"]
    return Shape(math.ceil(shape.height / stride), math.ceil(shape.width / stride), shape.channels)


def involution_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    if shape.channels % args["groups"]:
        raise ShapeProblem(
            f"{args['groups']} does not divide the {shape.channels} input channels", "groups"
        )
    return odd_kernel_strided(shape, args)


def local_attention_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    heads = args["heads"]
    if shape.channels % heads or shape.channels // heads < 2:
        raise ShapeProblem(
            f"{heads} must divide the {shape.channels} input channels, leaving at least 2 per head",
            "heads",
        )
    return odd_kernel_strided(shape, args)


def pool_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    size, padding = args["pool_size"], args["padding"]
    stride = args["strides"] or size
    return Shape(
        windowed(shape.height, size, stride, padding),
        windowed(shape.width, size, stride, padding),
        shape.channels,
    )


def unchanged(shape: Shape, args: dict[str, Any]) -> Shape:
    return shape


def flatten_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    return replace(shape, features=shape.height * shape.width * shape.channels)


def global_pool_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    return replace(shape, features=shape.channels)


def dense_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    return replace(shape, features=args["units"])


# ---- multiply-accumulates per image, from the built layer ----
# (input and output shapes are Keras shapes with the batch dimension first)


def conv2d_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    kernel_height, kernel_width = layer.kernel_size
    per_output = kernel_height * kernel_width * input_shape[-1] // layer.groups
    return math.prod(output_shape[1:]) * per_output


def dense_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    return math.prod(output_shape[1:]) * input_shape[-1]


def involution_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    """Kernel generation (1x1 reduce and span) plus K*K*C per output position."""
    positions = math.prod(output_shape[1:-1])
    channels = input_shape[-1]
    hidden = layer.reduce.filters
    kernel_values = layer.kernel_size**2 * layer.groups
    generation = positions * (channels * hidden + hidden * kernel_values)
    return generation + positions * layer.kernel_size**2 * channels


def local_attention_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    """Per input position (attention runs before the stride's pooling): the 1x1
    query, key and value projections (3*C*C), then per tap and channel one
    multiply-add each for the content logit, the position logit and the
    aggregation (3*K*K*C). The softmax's exponentials are not multiply-adds."""
    positions = math.prod(input_shape[1:-1])
    channels = input_shape[-1]
    return positions * (3 * channels * channels + 3 * layer.kernel_size**2 * channels)


def no_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    """Comparisons, additions or per-element work: small next to the multiply-adds."""
    return 0


# ---- the registry ----

MacRule = Callable[[Any, tuple, tuple], int]
ShapeRule = Callable[[Shape, dict[str, Any]], Shape]


@dataclass(frozen=True)
class LayerKind:
    """One layer kind: everything config checking, model building and MAC counting need."""

    name: str
    arguments: type[Section]
    output_shape: ShapeRule
    builder: str  # "module:attribute" of the Keras layer class, imported when a model is built
    macs: MacRule
    takes: Literal["image", "flat", "any"]  # the input it needs
    example: dict[str, Any]  # arguments for the registry's own test

    def layer_class(self) -> type:
        module, _, attribute = self.builder.partition(":")
        return getattr(importlib.import_module(module), attribute)


LAYER_KINDS: dict[str, LayerKind] = {
    kind.name: kind
    for kind in (
        LayerKind(
            name="conv2d",
            arguments=Conv2DArgs,
            output_shape=conv2d_shape,
            builder="keras.layers:Conv2D",
            macs=conv2d_macs,
            takes="image",
            example={"filters": 4, "kernel_size": 3, "strides": 2},
        ),
        LayerKind(
            name="involution",
            arguments=InvolutionArgs,
            output_shape=involution_shape,
            builder="involution_bench.ops:Involution",
            macs=involution_macs,
            takes="image",
            example={"kernel_size": 3, "stride": 2, "groups": 2, "reduction_ratio": 2},
        ),
        LayerKind(
            name="local_attention",
            arguments=LocalAttentionArgs,
            output_shape=local_attention_shape,
            builder="involution_bench.ops:LocalSelfAttention",
            macs=local_attention_macs,
            takes="image",
            example={"kernel_size": 3, "heads": 2, "stride": 2},
        ),
        LayerKind(
            name="relu",
            arguments=NameOnlyArgs,
            output_shape=unchanged,
            builder="keras.layers:ReLU",
            macs=no_macs,
            takes="any",
            example={},
        ),
        LayerKind(
            name="max_pool",
            arguments=PoolArgs,
            output_shape=pool_shape,
            builder="keras.layers:MaxPooling2D",
            macs=no_macs,
            takes="image",
            example={"pool_size": 3, "strides": 2, "padding": "same"},
        ),
        LayerKind(
            name="avg_pool",
            arguments=PoolArgs,
            output_shape=pool_shape,
            builder="keras.layers:AveragePooling2D",
            macs=no_macs,
            takes="image",
            example={"pool_size": 2},
        ),
        LayerKind(
            name="batch_norm",
            arguments=BatchNormArgs,
            output_shape=unchanged,
            builder="keras.layers:BatchNormalization",
            macs=no_macs,
            takes="any",
            example={},
        ),
        LayerKind(
            name="flatten",
            arguments=NameOnlyArgs,
            output_shape=flatten_shape,
            builder="keras.layers:Flatten",
            macs=no_macs,
            takes="image",
            example={},
        ),
        LayerKind(
            name="dense",
            arguments=DenseArgs,
            output_shape=dense_shape,
            builder="keras.layers:Dense",
            macs=dense_macs,
            takes="flat",
            example={"units": 5},
        ),
        LayerKind(
            name="dropout",
            arguments=DropoutArgs,
            output_shape=unchanged,
            builder="keras.layers:Dropout",
            macs=no_macs,
            takes="any",
            example={"rate": 0.5},
        ),
        LayerKind(
            name="global_avg_pool",
            arguments=NameOnlyArgs,
            output_shape=global_pool_shape,
            builder="keras.layers:GlobalAveragePooling2D",
            macs=no_macs,
            takes="image",
            example={},
        ),
    )
}
