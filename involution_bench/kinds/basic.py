"""`relu`, `dropout` and `flatten`: per-element and reshaping layers without weights."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from involution_bench.kinds.base import LayerKind, NameOnlyArgs, Shape, flat, unchanged
from involution_bench.schema import Float, LayerName, Section


class DropoutArgs(Section):
    rate: Annotated[Float, Field(ge=0, lt=1)]
    name: LayerName = None


def flatten_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    return flat(shape, shape.height * shape.width * shape.channels)


KINDS = (
    LayerKind(
        name="relu",
        arguments=NameOnlyArgs,
        output_shape=unchanged,
        builder="keras.layers:ReLU",
        takes="any",
        example={},
        summary="max(x, 0)",
    ),
    LayerKind(
        name="dropout",
        arguments=DropoutArgs,
        output_shape=unchanged,
        builder="keras.layers:Dropout",
        takes="any",
        example={"rate": 0.5},
        summary="zeroes a fraction `rate` of values in training",
    ),
    LayerKind(
        name="flatten",
        arguments=NameOnlyArgs,
        output_shape=flatten_shape,
        builder="keras.layers:Flatten",
        takes="image",
        example={},
        summary="an image to flat features",
    ),
)
