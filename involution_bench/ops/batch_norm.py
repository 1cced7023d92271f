"""Batch normalization on TensorFlow's fused kernel, numerically Keras' own layer.

Keras 3's `BatchNormalization` runs unfused on TensorFlow: the moments, then
several elementwise ops, each a pass over the tensor (keras-core #225). This
layer is the same layer, with the same weights, names, config and moving
statistics, that computes through `FusedBatchNormV3`: one pass forward in
training and one backward, on oneDNN where TensorFlow has it.

What has to match Keras, and does:
- normalization by the batch's biased variance (over N*H*W), epsilon inside
  the square root, then `gamma` and `beta`;
- moving statistics `m <- m * momentum + batch * (1 - momentum)`, with the
  batch variance biased as Keras' `ops.moments` gives it: the fused kernel
  returns the Bessel-corrected variance, so it is scaled by (n - 1) / n;
- float16 and bfloat16 inputs are computed in float32 and cast back.

Where the fused kernel does not apply (masks, renorm, synchronized, an axis
other than the last, ranks other than 2 and 4) it is Keras' own code path.

In training, channel counts that divide 16 (the involution layer's kernel
generator, attention's 8-channel bottlenecks) take a native kernel instead:
TensorFlow's fused kernel costs about a millisecond there whatever the
tensor's size, several times its passes over memory. It computes the same
statistics (the mean, then the biased variance over x - mean, summed in
double) and the same gradient; without the native library it is the fused
kernel again.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from involution_bench.ops.native import native_ops

# Channel counts that divide this many lanes take the native kernel in
# training (involution_bench/ops/native/batch_norm_kernels.h).
NARROW_LANES = 16


@keras.saving.register_keras_serializable(package="involution_bench")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras' `BatchNormalization` (same arguments, weights and config), fused.

    Example:
        >>> layer = BatchNormalization()
        >>> layer(tf.ones((2, 4, 4, 3)), training=True).shape
        TensorShape([2, 4, 4, 3])
        >>> [weight.name for weight in layer.weights]
        ['gamma', 'beta', 'moving_mean', 'moving_variance']
    """

    # Whether training may use the native kernel for narrow channels. XLA cannot
    # compile it: `models.prepare_for_xla` turns it off (it is not in the config).
    native = True

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            mask is None
            and not self.renorm
            and not self.synchronized
            and rank in (2, 4)
            and self.axis in (-1, rank - 1)
            and self.scale
            and self.center
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)  # as Keras: no overflow in 16 bits
        flat = len(inputs.shape) == 2
        if flat:
            x = x[:, tf.newaxis, tf.newaxis, :]  # (N, C) -> (N, 1, 1, C)
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        mean = tf.cast(self.moving_mean, tf.float32)
        variance = tf.cast(self.moving_variance, tf.float32)
        learning = bool(training) and self.trainable
        library = narrow_kernel(x.shape[-1]) if learning and self.native else None
        if library is not None:
            outputs, batch_mean, biased = library.invbench_narrow_batch_norm(
                x, gamma, beta, epsilon=self.epsilon
            )
            self._update_moving(mean, variance, batch_mean, biased)
            return tf.cast(outputs[:, 0, 0, :] if flat else outputs, self.compute_dtype)
        outputs, batch_mean, batch_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=gamma,
            offset=beta,
            mean=mean if not learning else tf.zeros_like(mean),
            variance=variance if not learning else tf.zeros_like(variance),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=learning,
        )
        if learning:
            count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
            biased = batch_variance * (count - 1.0) / count
            self._update_moving(mean, variance, batch_mean, biased)
        if flat:
            outputs = outputs[:, 0, 0, :]
        return tf.cast(outputs, self.compute_dtype)

    def _update_moving(self, mean, variance, batch_mean, biased_variance) -> None:
        self.moving_mean.assign(mean * self.momentum + batch_mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            variance * self.momentum + biased_variance * (1.0 - self.momentum)
        )


def narrow_kernel(channels: int | None):
    """The native op library where it normalizes `channels` in training: channel
    counts dividing 16, on a CPU-only machine where the library builds; else None."""
    if channels is None or channels > NARROW_LANES or NARROW_LANES % channels:
        return None
    if tf.config.list_logical_devices("GPU"):
        return None
    return native_ops()
