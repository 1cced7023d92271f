"""Local attention's weights over K x K neighbourhoods: the query-key logits,
their position term, the mask of taps outside the image, and the softmax.

`neighbourhood_logits` is the involution *kernel gradient* with the queries
as the upstream gradient and the keys as the input (one group per head),
so its gradients are the involution forward pass (for the queries) and
input gradient (for the keys). On the native path the rest is one more
native op each way (`native/attention_kernels.h`); on the slices path it
is XLA-compiled TensorFlow. `local_attention.LocalSelfAttention` is the
layer built on them.
"""

from __future__ import annotations

import tensorflow as tf

from involution_bench.ops import slices
from involution_bench.ops.involution import auto_implementation, in_native_dtype, require_native

# Logit of a neighbour outside the image: its softmax weight is exactly 0 in
# float32 (exp(-1e9) underflows), so such keys are masked, not zero-padded.
MASKED = -1e9


def neighbourhood_logits(
    queries: tf.Tensor,
    keys: tf.Tensor,
    kernel_size: int,
    groups: int,
    implementation: str = "auto",
) -> tf.Tensor:
    """`out[b, i, j, t, g] = sum_c q[b, i, j, g, c] * k[b, i+u-p, j+v-p, g, c]`, zero outside.

    Args:
        queries, keys: `(B, H, W, C)`, channels in `groups` contiguous blocks.
        kernel_size: K (odd), the neighbourhood's height and width.
        groups: heads; each reduces over its own C / groups channels.
        implementation: "auto", "native" or "slices", as for `involution`.

    Returns:
        `(B, H, W, K*K, groups)`, the taps in row-major (u*K + v) order.
    """
    queries = tf.convert_to_tensor(queries)
    keys = tf.cast(keys, queries.dtype)
    channels = queries.shape[-1]
    if implementation == "auto":
        implementation = auto_implementation(queries.dtype, channels // groups, kernel_size)
    if implementation == "native":
        library = require_native()
        return in_native_dtype(
            lambda q, k: _native_logits(library, q, k, kernel_size, groups), queries, keys
        )
    return _compiled_logits(queries, keys, kernel_size, groups)


def _native_logits(library, queries, keys, kernel_size, groups):
    attrs = {"kernel_size": kernel_size, "stride": 1, "groups": groups}

    @tf.custom_gradient
    def op(queries, keys):
        logits = library.invbench_involution_kernel_grad(queries, keys, **attrs)

        def gradient(upstream):
            return (
                library.invbench_involution(keys, upstream, **attrs),
                library.invbench_involution_input_grad(queries, upstream, keys, **attrs),
            )

        return logits, gradient

    return op(queries, keys)


def _slices_logits(queries, keys, kernel_size, groups):
    height, width = keys.shape[1], keys.shape[2]

    @tf.custom_gradient
    def op(queries, keys):
        def gradient(upstream):
            return (
                slices.forward(keys, upstream, kernel_size, 1, groups),
                slices.input_gradient(queries, upstream, height, width, kernel_size, 1, groups),
            )

        return slices.kernel_gradient(queries, keys, kernel_size, 1, groups), gradient

    if height is None or width is None:  # the input gradient needs static sizes
        return slices.kernel_gradient(queries, keys, kernel_size, 1, groups)
    return op(queries, keys)


# As the involution slices: uncompiled, K*K strided slices cost several times more.
_compiled_logits = tf.function(_slices_logits, jit_compile=True)


def neighbourhood_mask(height, width, kernel_size: int) -> tf.Tensor:
    """`(H, W, K*K)`, True where tap t of position (i, j) lies inside the image."""
    pad = kernel_size // 2
    offsets = tf.range(kernel_size) - pad

    def inside(size):  # (size, K)
        position = tf.range(size)[:, None] + offsets[None, :]
        return (position >= 0) & (position < size)

    rows, cols = inside(height), inside(width)
    mask = rows[:, None, :, None] & cols[None, :, None, :]  # (H, W, K, K)
    return tf.reshape(mask, [height, width, kernel_size**2])


def neighbourhood_softmax(
    queries: tf.Tensor,
    keys: tf.Tensor,
    kernel_size: int,
    heads: int,
    relative: tf.Tensor | None = None,
    implementation: str = "auto",
) -> tf.Tensor:
    """Attention weights `(B, H, W, K*K, heads)` over each position's neighbourhood.

    Logits `q . (k + r[t]) / sqrt(depth)`, with `relative` `(K*K, depth)` the
    position embedding of each tap, or `(K, depth)` factored (`full_embedding`),
    or None (content only); keys outside the
    image are masked out; the softmax runs in float32 at least (in bfloat16
    it would round small weights away) and the weights come back in the
    queries' dtype.
    """
    queries = tf.convert_to_tensor(queries)
    if implementation == "auto":
        implementation = auto_implementation(queries.dtype, queries.shape[-1] // heads, kernel_size)
    if implementation == "native":
        if relative is None:
            relative = tf.zeros([kernel_size**2, queries.shape[-1] // heads], queries.dtype)
        library = require_native()
        return in_native_dtype(
            lambda q, k, r: _native_weights(library, q, k, r, kernel_size, heads),
            queries,
            tf.cast(keys, queries.dtype),
            tf.cast(relative, queries.dtype),
        )
    content = neighbourhood_logits(queries, keys, kernel_size, heads, implementation)
    relative = full_embedding(relative, kernel_size)
    return _compiled_softmax(content, queries, relative, kernel_size, heads)


def full_embedding(relative: tf.Tensor | None, kernel_size: int) -> tf.Tensor | None:
    """The `(K*K, depth)` embedding of every tap t = u*K + v.

    A factored one, `(K, depth)`, gives row offset u's embedding in its first
    depth // 2 channels and column offset v's in the rest, as local attention
    has it: the native ops take it so, for K*depth multiply-adds of position
    term a position instead of K*K*depth. A `(K*K, depth)` one is returned as
    it is (at K = 1 the two are the same).
    """
    if relative is None or kernel_size == 1 or relative.shape[0] != kernel_size:
        return relative
    rows = relative.shape[-1] // 2
    return tf.concat(
        [
            tf.repeat(relative[:, :rows], kernel_size, axis=0),
            tf.tile(relative[:, rows:], [kernel_size, 1]),
        ],
        axis=-1,
    )


def _native_weights(library, queries, keys, relative, kernel_size, heads):
    """The weights in one native op: the logits kernel with the position term, scale,
    mask and softmax as the epilogue of each block, so the logits never reach
    memory. Backward: the softmax's gradient op, then the logits' gradients (the
    involution forward pass for the queries, its input gradient for the keys)."""
    attrs = {"kernel_size": kernel_size, "stride": 1, "groups": heads}

    @tf.custom_gradient
    def op(queries, keys, relative):
        weights = library.invbench_attention_weights(queries, keys, relative, **attrs)

        def gradient(upstream):
            content, query_part, relative_grad = library.invbench_neighbourhood_softmax_grad(
                weights, upstream, queries, relative, kernel_size=kernel_size
            )
            query_grad = library.invbench_involution(keys, content, **attrs) + query_part
            key_grad = library.invbench_involution_input_grad(queries, content, keys, **attrs)
            return query_grad, key_grad, relative_grad

        return weights, gradient

    return op(queries, keys, relative)


def _masked_softmax(content, queries, relative, kernel_size, heads):
    shape = tf.shape(queries)
    depth = queries.shape[-1] // heads
    if relative is not None:
        grouped = tf.reshape(queries, [shape[0], shape[1], shape[2], heads, depth])
        content += tf.einsum("bhwgc,tc->bhwtg", grouped, relative)
    softmax_dtype = tf.float64 if queries.dtype == tf.float64 else tf.float32
    logits = tf.cast(content, softmax_dtype) * depth**-0.5
    inside = neighbourhood_mask(shape[1], shape[2], kernel_size)
    logits = tf.where(inside[None, :, :, :, None], logits, MASKED)
    return tf.cast(tf.nn.softmax(logits, axis=3), queries.dtype)


# XLA fuses the position term, mask and softmax into a few loops: 2.3x faster
# forward and backward than TensorFlow's kernels (softmax over a middle axis
# transposes), measured with B=64, 16x16, K=7, 3 heads on a 2-core Xeon.
_compiled_softmax = tf.function(_masked_softmax, jit_compile=True)
