"""`max_pool`, `avg_pool` and `global_avg_pool`: Keras' pooling layers."""

from __future__ import annotations

from typing import Any, Literal

from involution_bench.kinds.base import LayerKind, NameOnlyArgs, Shape, flat, windowed
from involution_bench.schema import LayerName, PositiveInt, Section


class PoolArgs(Section):
    pool_size: PositiveInt = 2
    strides: PositiveInt | None = None
    padding: Literal["same", "valid"] = "valid"
    name: LayerName = None


def pool_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    size, padding = args["pool_size"], args["padding"]
    stride = args["strides"] or size
    return Shape(
        windowed(shape.height, size, stride, padding),
        windowed(shape.width, size, stride, padding),
        shape.channels,
    )


def global_pool_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    return flat(shape, shape.channels)


KINDS = (
    LayerKind(
        name="max_pool",
        arguments=PoolArgs,
        output_shape=pool_shape,
        builder="keras.layers:MaxPooling2D",
        takes="image",
        example={"pool_size": 3, "strides": 2, "padding": "same"},
        summary="the largest value of each window (strides default to pool_size)",
    ),
    LayerKind(
        name="avg_pool",
        arguments=PoolArgs,
        output_shape=pool_shape,
        builder="keras.layers:AveragePooling2D",
        takes="image",
        example={"pool_size": 2},
        summary="the mean of each window (strides default to pool_size)",
    ),
    LayerKind(
        name="global_avg_pool",
        arguments=NameOnlyArgs,
        output_shape=global_pool_shape,
        builder="keras.layers:GlobalAveragePooling2D",
        takes="image",
        example={},
        summary="the mean of each channel over the image: flat features",
    ),
)
