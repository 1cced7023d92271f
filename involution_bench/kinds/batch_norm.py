"""`batch_norm`: Keras' batch normalization."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from involution_bench.kinds.base import Baseline, LayerKind, unchanged
from involution_bench.schema import Float, LayerName, PositiveFloat, Section


class BatchNormArgs(Section):
    momentum: Annotated[Float, Field(ge=0, lt=1)] = 0.99
    epsilon: PositiveFloat = 1e-3
    name: LayerName = None


KINDS = (
    LayerKind(
        name="batch_norm",
        arguments=BatchNormArgs,
        output_shape=unchanged,
        builder="involution_bench.ops:BatchNormalization",  # Keras' layer on the fused kernel
        weights=lambda args: (2, 2),  # gamma, beta; moving mean and variance
        takes="any",
        example={},
        summary="batch normalization, Keras' numerics on TensorFlow's fused kernel (folds "
        "into the layer before it at inference: no MACs)",
        baseline=Baseline("keras.layers:BatchNormalization", "keras batch norm"),
    ),
)
