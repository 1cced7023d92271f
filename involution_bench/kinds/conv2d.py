"""`conv2d`: Keras' 2-D convolution (1x1 as one matrix product)."""

from __future__ import annotations

import math
from typing import Any, Literal

from involution_bench.kinds.base import Baseline, LayerKind, Shape, windowed
from involution_bench.schema import Activation, LayerName, PositiveInt, Section


class Conv2DArgs(Section):
    filters: PositiveInt
    kernel_size: PositiveInt = 3
    strides: PositiveInt = 1
    padding: Literal["same", "valid"] = "valid"
    activation: Activation = None
    use_bias: bool = True
    name: LayerName = None


def conv2d_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    size, stride, padding = args["kernel_size"], args["strides"], args["padding"]
    return Shape(
        windowed(shape.height, size, stride, padding),
        windowed(shape.width, size, stride, padding),
        args["filters"],
    )


def conv2d_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    kernel_height, kernel_width = layer.kernel_size
    per_output = kernel_height * kernel_width * input_shape[-1] // layer.groups
    return math.prod(output_shape[1:]) * per_output


KINDS = (
    LayerKind(
        name="conv2d",
        arguments=Conv2DArgs,
        output_shape=conv2d_shape,
        builder="involution_bench.ops:Conv2D",  # Keras' layer; 1x1 a matmul
        macs=conv2d_macs,
        weights=lambda args: (1 + args["use_bias"], 0),  # kernel, bias
        takes="image",
        example={"filters": 4, "kernel_size": 3, "strides": 2},
        summary="convolution: K*K*C multiply-adds per output value (1x1 runs as one "
        "matrix product, after a native subsample where strided)",
        baseline=Baseline("keras.layers:Conv2D", "keras conv2d"),
    ),
)
