"""The source article's formulations, kept as it wrote them: the baselines of `bench`.

The article computes involution with `tf.image.extract_patches`, which
materializes a tensor K*K times the size of the input, then a multiply and a
sum. Local self-attention in the same form takes patches of the keys and the
values. Both are correct and slow; invbench times its own paths against them.
"""

from __future__ import annotations

import tensorflow as tf

from involution_bench.ops.involution_layer import Involution
from involution_bench.ops.neighbourhood import neighbourhood_mask


def article_involution(
    inputs: tf.Tensor, kernel: tf.Tensor, kernel_size: int, stride: int = 1, groups: int = 1
) -> tf.Tensor:
    """The source article's computation, with the official (contiguous) channel groups."""
    channels = inputs.shape[-1]
    patches = tf.image.extract_patches(
        images=inputs,
        sizes=[1, kernel_size, kernel_size, 1],
        strides=[1, stride, stride, 1],
        rates=[1, 1, 1, 1],
        padding="SAME",
    )  # (B, H', W', K*K*C)
    shape = tf.shape(patches)
    patches = tf.reshape(
        patches, [shape[0], shape[1], shape[2], kernel_size**2, groups, channels // groups]
    )
    output = tf.reduce_sum(kernel[..., tf.newaxis] * patches, axis=3)
    return tf.reshape(output, [shape[0], shape[1], shape[2], channels])


def article_attention(queries, keys, values, relative, kernel_size: int, heads: int) -> tf.Tensor:
    """Masked local attention over extract_patches, logits `q . (k + r[t])`, with
    `relative` `(K*K, depth)` the heads' shared position embedding (None: content only)."""
    channels = queries.shape[-1]
    depth = channels // heads

    def patches(tensor):  # (B, H, W, K*K, heads, depth)
        found = tf.image.extract_patches(
            tensor, [1, kernel_size, kernel_size, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME"
        )
        shape = tf.shape(found)
        return tf.reshape(found, [shape[0], shape[1], shape[2], kernel_size**2, heads, depth])

    shape = tf.shape(queries)
    grouped = tf.reshape(queries, [shape[0], shape[1], shape[2], 1, heads, depth])
    neighbours = patches(keys)
    if relative is not None:
        neighbours += tf.cast(relative, neighbours.dtype)[:, None, :]
    logits = tf.reduce_sum(grouped * neighbours, axis=-1) * depth**-0.5
    inside = neighbourhood_mask(shape[1], shape[2], kernel_size)
    weights = tf.nn.softmax(tf.where(inside[None, :, :, :, None], logits, -1e9), axis=3)
    output = tf.reduce_sum(weights[..., tf.newaxis] * patches(values), axis=3)
    return tf.reshape(output, shape)


class ArticleInvolution(Involution):
    """The `Involution` layer computing its op the article's way (the model baseline)."""

    def call(self, inputs, training=None):
        kernel = self.generate_kernel(inputs, training=training)
        return article_involution(inputs, kernel, self.kernel_size, self.stride, self.groups)
