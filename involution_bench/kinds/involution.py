"""`involution`: the Involution layer (`involution_bench.ops.Involution`)."""

from __future__ import annotations

import math
from typing import Any

from involution_bench.kinds.base import (
    Baseline,
    LayerKind,
    LayerMap,
    Shape,
    ShapeProblem,
    odd_window_strided,
)
from involution_bench.schema import LayerName, PositiveInt, Section


class InvolutionArgs(Section):
    kernel_size: PositiveInt = 3
    stride: PositiveInt = 1
    groups: PositiveInt = 1
    reduction_ratio: PositiveInt = 4
    name: LayerName = None


def involution_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    if shape.channels % args["groups"]:
        raise ShapeProblem(
            f"{args['groups']} does not divide the {shape.channels} input channels", "groups"
        )
    return odd_window_strided(shape, args)


def involution_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    """Kernel generation (1x1 reduce and span) plus K*K*C per output position."""
    positions = math.prod(output_shape[1:-1])
    channels = input_shape[-1]
    hidden = layer.reduce.filters
    kernel_values = layer.kernel_size**2 * layer.groups
    generation = positions * (channels * hidden + hidden * kernel_values)
    return generation + positions * layer.kernel_size**2 * channels


def kernel_sum(layer, inputs):
    """At each position, the sum of the K*K values (over all groups) of the kernel
    generated there, as the article draws them: large where the layer weighs its
    neighbourhood heavily."""
    import numpy as np

    kernel = layer.generate_kernel(inputs, training=False)  # (N, H', W', K*K, G)
    return np.asarray(kernel, dtype=np.float32).sum(axis=(3, 4))


KINDS = (
    LayerKind(
        name="involution",
        arguments=InvolutionArgs,
        output_shape=involution_shape,
        builder="involution_bench.ops:Involution",
        macs=involution_macs,
        # reduce (kernel, bias), batch norm (gamma, beta | moving mean, variance), span
        weights=lambda args: (6, 2),
        takes="image",
        example={"kernel_size": 3, "stride": 2, "groups": 2, "reduction_ratio": 2},
        involution_op=True,
        layer_map=LayerMap("kernel sum", kernel_sum),
        baseline=Baseline("involution_bench.ops.article:ArticleInvolution", "article formulation"),
        summary="a K*K kernel per position and channel group, generated from the input "
        "(Li et al. 2021); kernel_size odd, groups must divide the channels",
    ),
)
