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
  input = keys), so `neighbourhood.neighbourhood_logits` runs that kernel,
  and its gradients are the involution forward pass (for the queries) and
  input gradient (for the keys).

So the native kernels, and their pure-TensorFlow twins, serve both layers;
the position term, mask and softmax between them are `neighbourhood`'s.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from involution_bench.ops.conv2d import pointwise_product
from involution_bench.ops.involution import (
    auto_implementation,
    in_native_dtype,
    involution,
    require_native,
)
from involution_bench.ops.layer_checks import check_arguments, strided_shape
from involution_bench.ops.neighbourhood import neighbourhood_softmax


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
    queries = tf.convert_to_tensor(queries)
    depth = queries.shape[-1] // heads
    if implementation == "auto":
        implementation = auto_implementation(queries.dtype, depth, kernel_size)
    if implementation == "native":
        if relative is None:
            relative = tf.zeros([kernel_size**2, depth], queries.dtype)
        library = require_native()
        return in_native_dtype(
            lambda *tensors: _native_attention(library, *tensors, kernel_size, heads),
            *(tf.cast(t, queries.dtype) for t in (queries, keys, values, relative)),
        )
    weights = neighbourhood_softmax(queries, keys, kernel_size, heads, relative, implementation)
    return involution(values, weights, kernel_size, 1, heads, implementation)


def _native_attention(library, queries, keys, values, relative, kernel_size, heads):
    """Forward: the weights op, then the aggregation (the involution op). Backward:
    the aggregation's kernel gradient with the softmax's gradient as its epilogue
    (one op, `native/attention_grad_kernels.h`), so the weights' gradient never
    reaches memory; then the logits' gradients, as in `neighbourhood`."""
    attrs = {"kernel_size": kernel_size, "stride": 1, "groups": heads}

    @tf.custom_gradient
    def op(queries, keys, values, relative):
        weights = library.invbench_attention_weights(queries, keys, relative, **attrs)
        output = library.invbench_involution(values, weights, **attrs)

        def gradient(upstream):
            value_grad = library.invbench_involution_input_grad(upstream, weights, values, **attrs)
            content, query_part, relative_grad = library.invbench_attention_grad(
                upstream, values, weights, queries, relative, **attrs
            )
            query_grad = library.invbench_involution(keys, content, **attrs) + query_part
            key_grad = library.invbench_involution_input_grad(queries, content, keys, **attrs)
            return query_grad, key_grad, value_grad, relative_grad

        return output, gradient

    return op(queries, keys, values, relative)


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
        # Matrix products (ops.conv2d), whose gradients ran 13% faster than
        # einsum's at this layer's shapes; three of them, one per third of
        # the weight, so that the split (and its gradient's concat) is of the
        # small weight, not of the B*H*W*3C projection: the whole equal-budget
        # attention step took 0.961 of the one-product form's
        # (docs/benchmarks.md).
        weights = tf.split(tf.cast(self.projection, inputs.dtype), 3, axis=-1)
        return [pointwise_product(inputs, weight) for weight in weights]

    def _relative_embedding(self, dtype) -> tf.Tensor:
        """`(K, depth)`, factored: tap (u, v) gets row embedding u and column
        embedding v (`neighbourhood.full_embedding`). The native ops take it so,
        and spend K, not K*K, multiply-adds a channel on the position term."""
        relative = tf.concat([self.row_embedding, self.column_embedding], axis=-1)
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
