"""Keras' `Conv2D`, with its 1x1 cases computed as one matrix product.

A 1x1 convolution with stride 1 is `(B*H*W, C_in) @ (C_in, C_out)`. TensorFlow's
CPU `Conv2D` and its two gradients take that case through the general
convolution kernels, which are slow at the narrow widths of bottlenecks and
of involution's kernel generator: on a 2-core AMD EPYC, forward and both
gradients at batch 128, a 16x16x4 -> 49 projection took 2.5 ms as a `Conv2D`
against 0.6 ms as a `MatMul`, and a bottleneck's 16x16x32 -> 16, 1.8 against
1.0 ms (`docs/benchmarks.md`, "Pointwise convolutions as matrix products").

A strided 1x1 convolution (a residual shortcut) reads only every stride-th
row and column, whatever its padding: where the native library builds, it is
that subsample (`native/subsample_kernels.h`, one copy each way) and then the
product. TensorFlow's own strided slice and its gradient cost more than the
convolution, so without the library, and under XLA (`models.prepare_for_xla`),
it stays a convolution.

The layer is Keras' (arguments, weights, names and config); models saved with
Keras' own `Conv2D` load as that and compute the same values.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from involution_bench.ops.native import native_ops

SUBSAMPLED_DTYPES = (tf.float32, tf.float64, tf.bfloat16, tf.float16)


def pointwise_product(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """A 1x1, stride-1 convolution of `(..., C_in)` by a `(1, 1, C_in, C_out)` (or
    `(C_in, C_out)`) kernel."""
    channels_in, channels_out = kernel.shape[-2], kernel.shape[-1]
    leading = tf.shape(inputs)[:-1]
    rows = tf.reshape(inputs, [-1, channels_in])
    product = tf.matmul(rows, tf.reshape(kernel, [channels_in, channels_out]))
    return tf.reshape(product, tf.concat([leading, [channels_out]], axis=0))


@keras.saving.register_keras_serializable(package="involution_bench")
class Conv2D(keras.layers.Conv2D):
    """Keras' `Conv2D` (same arguments, weights and config); 1x1 at stride 1 is a matmul.

    Example:
        >>> layer = Conv2D(8, 1, use_bias=False)
        >>> layer(tf.ones((2, 5, 7, 3))).shape
        TensorShape([2, 5, 7, 8])
        >>> layer.pointwise
        True
    """

    # Whether a strided 1x1 convolution may subsample natively. XLA cannot
    # compile the native op: `models.prepare_for_xla` turns it off.
    native = True

    @property
    def pointwise(self) -> bool:
        """Whether `call` computes this convolution as one matrix product (stride 1)."""
        return self._one_by_one() and tuple(self.strides) == (1, 1)

    def _one_by_one(self) -> bool:
        return (
            tuple(self.kernel_size) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.groups == 1
            and self.data_format == "channels_last"
        )

    def subsampling_library(self, dtype):
        """The native library where this strided 1x1 convolution is a subsample and
        a product for inputs of `dtype` (CPU only; not under XLA); else None."""
        if not (self.native and self._one_by_one() and tuple(self.strides) != (1, 1)):
            return None
        if tf.as_dtype(dtype) not in SUBSAMPLED_DTYPES:
            return None
        if tf.config.list_logical_devices("GPU"):
            return None
        return native_ops()

    def convolution_op(self, inputs, kernel):
        if self.pointwise:
            return pointwise_product(inputs, kernel)
        library = self.subsampling_library(inputs.dtype)
        if library is not None:
            row_stride, col_stride = self.strides
            subsampled = library.invbench_subsample(
                inputs, row_stride=row_stride, col_stride=col_stride
            )
            return pointwise_product(subsampled, kernel)
        return super().convolution_op(inputs, kernel)
