"""Local self-attention's neighbourhood part, timed as `bench op` times involution.

The timed part is what the involution kernels serve: the query-key logits
with their position term, the masked softmax and the aggregation of
values, forward and backward, gradients of the position embedding
included (the 1x1 projections are plain matrix products, the same on
every path). The
baseline is the same maths in the article's form: `tf.image.extract_patches`
of the keys and the values, K*K times the input each, then products and sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from involution_bench.ops.article import article_attention
from involution_bench.ops.involution import auto_implementation, involution
from involution_bench.ops.local_attention import local_attention
from involution_bench.ops.neighbourhood import (
    _compiled_softmax,
    neighbourhood_logits,
    neighbourhood_softmax,
)

FLOAT_BYTES = 4


def _with_implementation(implementation: str):
    def run(queries, keys, values, relative, kernel_size, heads):
        return local_attention(queries, keys, values, kernel_size, heads, relative, implementation)

    return run


def _native_with_xla_softmax(queries, keys, values, relative, kernel_size, heads):
    """The native path as it was before its softmax op: native logits and
    aggregation around the XLA-compiled position term, mask and softmax."""
    content = neighbourhood_logits(queries, keys, kernel_size, heads, "native")
    weights = _compiled_softmax(content, queries, relative, kernel_size, heads)
    return involution(values, weights, kernel_size, 1, heads, "native")


def _native_with_softmax_grad_op(queries, keys, values, relative, kernel_size, heads):
    """The native path as it was before its fused backward pass: the weights op and
    the aggregation each with its own gradient, the softmax's gradient a separate
    op over the aggregation's kernel gradient read back from memory."""
    weights = neighbourhood_softmax(queries, keys, kernel_size, heads, relative, "native")
    return involution(values, weights, kernel_size, 1, heads, "native")


@dataclass(frozen=True)
class AttentionShape:
    """One benchmark case of local attention: square images, stride 1."""

    name: str
    batch: int
    size: int
    channels: int
    kernel_size: int
    heads: int

    def arrays(self, seed: int = 0) -> tuple[tf.Tensor, ...]:
        """Queries, keys, values, the position embedding (K*K, depth) and an
        upstream gradient, float32."""
        rng = np.random.default_rng(seed)
        shape = (self.batch, self.size, self.size, self.channels)
        q, k, v, upstream = (
            tf.constant(rng.standard_normal(shape, dtype=np.float32)) for _ in range(4)
        )
        relative_shape = (self.kernel_size**2, self.channels // self.heads)
        relative = tf.constant(rng.standard_normal(relative_shape, dtype=np.float32))
        return q, k, v, relative, upstream

    def apply(self, op, operands) -> tf.Tensor:
        return op(*operands, self.kernel_size, self.heads)

    def implementations(self, native: bool) -> list[tuple[str, object, bool]]:
        """(name, op, jit_compile): the article's form first, then invbench's paths."""
        found = [
            ("article", article_attention, False),
            ("slices", _with_implementation("slices"), False),
        ]
        if native:
            found.append(("native, XLA softmax", _native_with_xla_softmax, False))
            found.append(("native, softmax grad op", _native_with_softmax_grad_op, False))
            found.append(("native", _with_implementation("native"), False))
        return found

    def default_path(self, dtype=tf.float32) -> str:
        return auto_implementation(dtype, self.channels // self.heads, self.kernel_size)

    def minimum_bytes(self, value_bytes: int = FLOAT_BYTES) -> int:
        """Bytes a forward plus backward pass must move at least: q, k, v and y
        once forward and the weights written once; backward reads dy, q, k, v
        and the weights and writes dq, dk and dv."""
        values = self.batch * self.size**2 * self.channels
        weights = self.batch * self.size**2 * self.kernel_size**2 * self.heads
        return (11 * values + 2 * weights) * value_bytes


ATTENTION_SHAPES = {
    shape.name: shape
    for shape in (
        # configs/equal-macs/attention.yaml's stage-2 layer at a batch of 64.
        AttentionShape("attention", batch=64, size=16, channels=24, kernel_size=7, heads=3),
        # The `rednet` involution case's size, with 16 channels per head.
        AttentionShape("attention-wide", batch=32, size=32, channels=64, kernel_size=7, heads=4),
    )
}
