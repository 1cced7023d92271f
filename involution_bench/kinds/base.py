"""What a layer kind declares, and the shape and cost rules kinds share.

A `LayerKind` is everything the rest of invbench needs to know of one kind
of layer a config can name: its arguments (a pydantic model named as the
Keras constructor names them), its output-shape rule (configs are checked
with it before any TensorFlow work), its Keras builder, its multiply-add
rule, its weights, whether it runs the involution kernels, how it draws a
map for `invbench kernels`, and its baseline for `invbench bench model`.

Nothing here imports TensorFlow: builders and baselines are "module:attribute"
strings, imported when a model is built.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from involution_bench.schema import LayerName, Section


class NameOnlyArgs(Section):
    name: LayerName = None


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


def unchanged(shape: Shape, args: dict[str, Any]) -> Shape:
    return shape


def flat(shape: Shape, features: int) -> Shape:
    return replace(shape, features=features)


def no_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    """Comparisons, additions or per-element work: small next to the multiply-adds."""
    return 0


def no_weights(args: dict[str, Any]) -> tuple[int, int]:
    return (0, 0)


def import_attribute(reference: str) -> Any:
    """`"keras.layers:Conv2D"` -> the class, imported now."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


MacRule = Callable[[Any, tuple, tuple], int]  # (built layer, input shape, output shape)
ShapeRule = Callable[[Shape, dict[str, Any]], Shape]
WeightRule = Callable[[dict[str, Any]], tuple[int, int]]  # (trainable, non-trainable) tensors
MapRule = Callable[[Any, Any], Any]  # (built layer, its inputs) -> (N, H', W') map


@dataclass(frozen=True)
class LayerMap:
    """What `invbench kernels` draws for a layer of this kind."""

    title: str  # what the map shows, under the layer's name
    values: MapRule


@dataclass(frozen=True)
class Baseline:
    """The layer `bench model` swaps in for this kind to time the baseline variant."""

    builder: str  # "module:attribute" of a class taking the same arguments
    label: str  # the variant's name in the table


@dataclass(frozen=True)
class LayerKind:
    """One layer kind: everything config checking, building, costs, maps and benches need."""

    name: str
    arguments: type[Section]
    output_shape: ShapeRule
    builder: str  # "module:attribute" of the Keras layer class
    takes: Literal["image", "flat", "any"]  # the input it needs
    example: dict[str, Any]  # arguments for the registry's own tests
    macs: MacRule = no_macs
    weights: WeightRule = no_weights  # weight tensors the built layer holds
    involution_op: bool = False  # runs the involution kernels (native or slices)
    layer_map: LayerMap | None = None
    baseline: Baseline | None = None
    summary: str = ""  # one line for the docs' table of kinds

    def layer_class(self) -> type:
        return import_attribute(self.builder)

    def layer_classes(self) -> tuple[type, ...]:
        """The builder's class, and the Keras class of the same name it replaces where
        it is a drop-in subclass (Conv2D, BatchNormalization): models saved before
        the replacement hold Keras' own."""
        cls = self.layer_class()
        peer = getattr(import_attribute("keras:layers"), cls.__name__, None)
        if peer is not None and peer is not cls and issubclass(cls, peer):
            return (cls, peer)
        return (cls,)

    def baseline_class(self) -> type | None:
        return import_attribute(self.baseline.builder) if self.baseline else None


def odd_window_strided(shape: Shape, args: dict[str, Any]) -> Shape:
    """An odd K x K window, same padding, stride args["stride"], channels kept."""
    if args["kernel_size"] % 2 == 0:
        raise ShapeProblem("must be odd", "kernel_size")
    stride = args["stride"]
    return Shape(math.ceil(shape.height / stride), math.ceil(shape.width / stride), shape.channels)
