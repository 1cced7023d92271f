"""`local_attention`: local self-attention (`involution_bench.ops.LocalSelfAttention`)."""

from __future__ import annotations

import math
from typing import Any

from involution_bench.kinds.base import LayerKind, LayerMap, Shape, ShapeProblem, odd_window_strided
from involution_bench.schema import LayerName, PositiveInt, Section


class LocalAttentionArgs(Section):
    kernel_size: PositiveInt = 3
    heads: PositiveInt = 1
    stride: PositiveInt = 1
    name: LayerName = None


def local_attention_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    heads = args["heads"]
    if shape.channels % heads or shape.channels // heads < 2:
        raise ShapeProblem(
            f"{heads} must divide the {shape.channels} input channels, leaving at least 2 per head",
            "heads",
        )
    return odd_window_strided(shape, args)


def local_attention_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    """Per input position (attention runs before the stride's pooling): the 1x1
    query, key and value projections (3*C*C), then per tap and channel one
    multiply-add each for the content logit, the position logit and the
    aggregation (3*K*K*C). The softmax's exponentials are not multiply-adds."""
    positions = math.prod(input_shape[1:-1])
    channels = input_shape[-1]
    return positions * (3 * channels * channels + 3 * layer.kernel_size**2 * channels)


def centre_weight(layer, inputs):
    """The weight each position keeps on itself (the centre tap), averaged over the
    heads: near 1 where the layer looks only at the position itself, near 1/(K*K)
    where it spreads evenly. (The weights always sum to 1, so their sum is no map.)"""
    import numpy as np

    weights = np.asarray(layer.attention_weights(inputs), dtype=np.float32)  # (N, H, W, K*K, heads)
    return weights[:, :, :, layer.kernel_size**2 // 2].mean(axis=-1)


KINDS = (
    LayerKind(
        name="local_attention",
        arguments=LocalAttentionArgs,
        output_shape=local_attention_shape,
        builder="involution_bench.ops:LocalSelfAttention",
        macs=local_attention_macs,
        weights=lambda args: (3, 0),  # fused q/k/v projection; row and column embeddings
        takes="image",
        example={"kernel_size": 3, "heads": 2, "stride": 2},
        involution_op=True,
        layer_map=LayerMap("centre weight", centre_weight),
        summary="softmax(q.(k + r)) over a K*K neighbourhood per head (Ramachandran et al. "
        "2019; see [local self-attention](attention.md)); kernel_size odd, heads must divide "
        "the channels (2 or more each), stride by average pooling after the attention",
    ),
)
