"""`dense`: Keras' fully connected layer."""

from __future__ import annotations

import math
from typing import Any

from involution_bench.kinds.base import LayerKind, Shape, flat
from involution_bench.schema import Activation, LayerName, PositiveInt, Section


class DenseArgs(Section):
    units: PositiveInt
    activation: Activation = None
    use_bias: bool = True
    name: LayerName = None


def dense_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    return flat(shape, args["units"])


def dense_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    return math.prod(output_shape[1:]) * input_shape[-1]


KINDS = (
    LayerKind(
        name="dense",
        arguments=DenseArgs,
        output_shape=dense_shape,
        builder="keras.layers:Dense",
        macs=dense_macs,
        weights=lambda args: (1 + args["use_bias"], 0),  # kernel, bias
        takes="flat",
        example={"units": 5},
        summary="fully connected; the last one's units are the dataset's classes",
    ),
)
