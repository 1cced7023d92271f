"""Local self-attention, built from involution's own parts.

Ramachandran et al., "Stand-Alone Self-Attention in Vision Models",
NeurIPS 2019 (arXiv 1906.05909). Each position attends to the K x K
neighbourhood around it, per head:

    logits[i, j, t, h] = q[i, j, h] . (k[i+u-p, j+v-p, h] + r[t])   (t = u*K + v)
    out[i, j, h]       = sum_t softmax_t(logits)[i, j, t, h] * v[i+u-p, j+v-p, h]

Both halves are involution's maths with one group per head:

- the aggregation is the involution op itself, with the softmax weights as
  the per-position kernel;
- the query-key logits are the same per-tap reduction over a group's
  channels as the involution *kernel gradient* (upstream = queries,
  input = keys), so `neighbourhood_logits` runs that kernel, and its
  gradients are the involution forward pass (for the queries) and input
  gradient (for the keys).

So the native kernels, and their pure-TensorFlow twins, serve both layers.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from involution_bench.ops import slices
from involution_bench.ops.involution import (
    auto_implementation,
    in_native_dtype,
    involution,
    require_native,
)
from involution_bench.ops.layer_checks import check_arguments, strided_shape

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
    position embedding of each tap (None: content only); keys outside the
    image are masked out; the softmax runs in float32 at least (in bfloat16
    it would round small weights away) and the weights come back in the
    queries' dtype.
    """
    queries = tf.convert_to_tensor(queries)
    if implementation == "auto":
        implementation = auto_implementation(queries.dtype, queries.shape[-1] // heads, kernel_size)
    content = neighbourhood_logits(queries, keys, kernel_size, heads, implementation)
    if implementation == "native":
        if relative is None:
            relative = tf.zeros([kernel_size**2, queries.shape[-1] // heads], queries.dtype)
        library = require_native()
        return in_native_dtype(
            lambda c, q, r: _native_softmax(library, c, q, r, kernel_size),
            content,
            queries,
            tf.cast(relative, queries.dtype),
        )
    return _compiled_softmax(content, queries, relative, kernel_size, heads)


def _native_softmax(library, content, queries, relative, kernel_size):
    """The position term, scale, mask and softmax in one native pass each way
    (ops/native/attention_kernels.h): in TensorFlow's kernels, or XLA's, they
    took 3x the time of the attention's two involution kernels together."""

    @tf.custom_gradient
    def op(content, queries, relative):
        weights = library.invbench_neighbourhood_softmax(
            content, queries, relative, kernel_size=kernel_size
        )

        def gradient(upstream):
            return library.invbench_neighbourhood_softmax_grad(
                weights, upstream, queries, relative, kernel_size=kernel_size
            )

        return weights, gradient

    return op(content, queries, relative)


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


def local_attention(
    queries: tf.Tensor,
    keys: tf.Tensor,
    values: tf.Tensor,
    kernel_size: int,
    heads: int,
    relative: tf.Tensor | None = None,
    implementation: str = "auto",
) -> tf.Tensor:
    """Each position's softmax-weighted sum of the values in its K x K neighbourhood:
    `(B, H, W, C)`, the aggregation being the involution op with one group per head."""
    weights = neighbourhood_softmax(queries, keys, kernel_size, heads, relative, implementation)
    return involution(values, weights, kernel_size, 1, heads, implementation)


@keras.saving.register_keras_serializable(package="involution_bench")
class LocalSelfAttention(keras.layers.Layer):
    """Stand-alone local self-attention over K x K neighbourhoods; keeps the channel count.

    Follows Ramachandran et al. (2019): 1x1 query, key and value projections
    (no bias), `heads` heads of C / heads channels, attention over each
    position's K x K neighbourhood with positions outside the image masked
    out, relative position embeddings split into a row half and a column
    half (shared by the heads), a softmax over the neighbourhood, and stride
    by average pooling the result. The logits are scaled by 1/sqrt(C / heads),
    as in Vaswani et al.: the paper's equation leaves the scale out, and
    without it the softmax starts nearly one-hot at wide heads.

    Args:
        kernel_size: K (odd), the neighbourhood's height and width.
        heads: number of heads; must divide C, leaving at least 2 channels per head.
        stride: average-pooling window and step applied to the output.
        implementation: "auto", "native" or "slices", for the involution kernels
            this layer runs (see `involution_bench.ops.involution`).
        **kwargs: standard layer arguments (name, dtype, ...).

    Example:
        >>> layer = LocalSelfAttention(kernel_size=3, heads=2)
        >>> layer(tf.zeros((2, 8, 8, 4))).shape
        TensorShape([2, 8, 8, 4])
        >>> layer.attention_weights(tf.zeros((2, 8, 8, 4))).shape  # (B, H, W, K*K, heads)
        TensorShape([2, 8, 8, 9, 2])
    """

    def __init__(
        self,
        kernel_size: int,
        heads: int = 1,
        stride: int = 1,
        implementation: str = "auto",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        check_arguments(
            "LocalSelfAttention",
            implementation,
            kernel_size=kernel_size,
            heads=heads,
            stride=stride,
        )
        self.kernel_size = kernel_size
        self.heads = heads
        self.stride = stride
        self.implementation = implementation

    def build(self, input_shape) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("LocalSelfAttention needs a known channel count")
        if channels % self.heads or channels // self.heads < 2:
            raise ValueError(
                f"LocalSelfAttention heads={self.heads} must divide the input channels "
                f"({channels}) and leave at least 2 per head (a row and a column half)"
            )
        self.channels = channels
        depth = channels // self.heads
        self.projection = self.add_weight(
            name="qkv", shape=(channels, 3 * channels), initializer="glorot_uniform"
        )
        # Row offsets take the first half of each head's channels, columns the rest.
        self.row_embedding = self.add_weight(
            name="row_embedding",
            shape=(self.kernel_size, depth // 2),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
        )
        self.column_embedding = self.add_weight(
            name="column_embedding",
            shape=(self.kernel_size, depth - depth // 2),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
        )
        self.pool = (
            keras.layers.AveragePooling2D(
                self.stride, self.stride, padding="same", name="pool", dtype=self.dtype_policy
            )
            if self.stride > 1
            else None
        )
        if self.pool is not None:
            self.pool.build(tuple(input_shape))

    def resolved_implementation(self) -> str:
        """ "native" or "slices": what `call` runs (the layer must be built)."""
        if self.implementation != "auto":
            return self.implementation
        return auto_implementation(
            self.compute_dtype, self.channels // self.heads, self.kernel_size
        )

    def _project(self, inputs):
        projected = tf.einsum("bhwc,cd->bhwd", inputs, tf.cast(self.projection, inputs.dtype))
        return tf.split(projected, 3, axis=-1)

    def _relative_embedding(self, dtype) -> tf.Tensor:
        """`(K*K, depth)`: tap (u, v) gets row embedding u and column embedding v."""
        relative = tf.concat(
            [
                tf.repeat(self.row_embedding, self.kernel_size, axis=0),
                tf.tile(self.column_embedding, [self.kernel_size, 1]),
            ],
            axis=-1,
        )
        return tf.cast(relative, dtype)

    def attention_weights(self, inputs) -> tf.Tensor:
        """The softmax weights: `(B, H, W, K*K, heads)`, summing to 1 over the taps."""
        inputs = tf.cast(inputs, self.compute_dtype)
        if not self.built:
            self.build(inputs.shape)
        queries, keys, _ = self._project(inputs)
        return neighbourhood_softmax(
            queries,
            keys,
            self.kernel_size,
            self.heads,
            self._relative_embedding(inputs.dtype),
            self.resolved_implementation(),
        )

    def call(self, inputs):
        queries, keys, values = self._project(inputs)
        output = local_attention(
            queries,
            keys,
            values,
            self.kernel_size,
            self.heads,
            self._relative_embedding(inputs.dtype),
            self.resolved_implementation(),
        )
        return self.pool(output) if self.pool is not None else output

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.stride)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            heads=self.heads,
            stride=self.stride,
            implementation=self.implementation,
        )
        return config
