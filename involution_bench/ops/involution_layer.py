"""The Involution layer: a kernel generated from the input at every position.

Li et al., "Involution: Inverting the Inherence of Convolution for Visual
Recognition", CVPR 2021 (arXiv 2103.06255). The layer follows the official
implementation (github.com/d-li14/involution): a kernel generated per
position by a 1x1 reduce convolution, batch norm, ReLU and a 1x1 span
convolution, shared by the channels of a contiguous group, then applied by
the `involution` op (`involution_bench.ops.involution`). On the native path,
at layers with enough output positions, the span convolution runs inside the
op (`span_involution`), so that the generated kernel never reaches memory;
`generate_kernel` still returns it, for kernel maps.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from involution_bench.ops.batch_norm import BatchNormalization
from involution_bench.ops.conv2d import Conv2D
from involution_bench.ops.involution import auto_implementation, involution, span_involution
from involution_bench.ops.layer_checks import check_arguments, strided_shape

# Output positions per image from which the span runs inside the native op:
# measured faster at RedNet's 16x16 and 8x8 layers, and since the span
# gradient's sums moved into registers at its 4x4 one too (docs/benchmarks.md).
# Smaller maps are not measured.
FUSED_SPAN_POSITIONS = 16


@keras.saving.register_keras_serializable(package="involution_bench")
class Involution(keras.layers.Layer):
    """Involution layer with a kernel generated from its input; keeps the channel count.

    Args:
        kernel_size: K, the height and width of each per-position kernel.
        stride: step between output positions; the kernel is generated from
            the input average-pooled by the same stride.
        groups: G, contiguous channel blocks sharing a kernel; must divide C.
        reduction_ratio: r; the kernel generator's hidden width is max(1, C // r).
        implementation: how the op runs: "auto", "native" or "slices" (the
            latter for XLA, which cannot compile the native kernel).
        **kwargs: standard layer arguments (name, dtype, ...).

    Example:
        >>> layer = Involution(kernel_size=3, groups=1, reduction_ratio=2)
        >>> layer(tf.zeros((2, 32, 32, 3))).shape
        TensorShape([2, 32, 32, 3])
        >>> layer.generate_kernel(tf.zeros((2, 32, 32, 3))).shape  # for kernel maps
        TensorShape([2, 32, 32, 9, 1])

    Reference:
        Li et al., "Involution: Inverting the Inherence of Convolution for
        Visual Recognition", CVPR 2021.
    """

    def __init__(
        self,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        reduction_ratio: int = 4,
        implementation: str = "auto",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        check_arguments(
            "Involution",
            implementation,
            kernel_size=kernel_size,
            stride=stride,
            groups=groups,
            reduction_ratio=reduction_ratio,
        )
        self.implementation = implementation
        self.kernel_size = kernel_size
        self.stride = stride
        self.groups = groups
        self.reduction_ratio = reduction_ratio

    def build(self, input_shape) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("Involution needs a known channel count")
        if channels % self.groups:
            raise ValueError(
                f"Involution groups={self.groups} must divide the input channels ({channels})"
            )
        self.pool = (
            keras.layers.AveragePooling2D(self.stride, self.stride, padding="same", name="pool")
            if self.stride > 1
            else None
        )
        self.reduce = Conv2D(  # 1x1: matrix products (ops.conv2d)
            max(1, channels // self.reduction_ratio), 1, name="reduce"
        )
        self.norm = BatchNormalization(name="norm")
        self.span = Conv2D(self.kernel_size**2 * self.groups, 1, name="span")
        self.channels = channels
        shape = tuple(input_shape)
        if self.pool is not None:
            self.pool.build(shape)
            shape = self.pool.compute_output_shape(shape)
        self.reduce.build(shape)
        shape = self.reduce.compute_output_shape(shape)
        self.norm.build(shape)
        self.span.build(shape)

    def hidden_features(self, inputs, training=None) -> tf.Tensor:
        """The kernel generator's hidden features, before the span: `(B, H', W', R)`."""
        features = self.pool(inputs) if self.pool is not None else inputs
        features = self.reduce(features)
        return tf.nn.relu(self.norm(features, training=training))

    def generate_kernel(self, inputs, training=None) -> tf.Tensor:
        """The kernel this layer applies to `inputs`: `(B, H', W', K*K, G)`."""
        kernel = self.span(self.hidden_features(inputs, training=training))
        shape = tf.shape(kernel)
        return tf.reshape(kernel, [shape[0], shape[1], shape[2], self.kernel_size**2, self.groups])

    def fuses_span(self, input_shape) -> bool:
        """Whether `call` runs the span projection inside the native op for inputs
        of this shape: natively, with enough output positions to pay."""
        height, width = strided_shape(input_shape, self.stride)[1:3]
        return (
            self.resolved_implementation() == "native"
            and height is not None
            and width is not None
            and height * width >= FUSED_SPAN_POSITIONS
        )

    def resolved_implementation(self) -> str:
        """ "native" or "slices": what `call` runs (the layer must be built)."""
        if self.implementation != "auto":
            return self.implementation
        group_channels = self.channels // self.groups
        return auto_implementation(self.compute_dtype, group_channels, self.kernel_size)

    def call(self, inputs, training=None):
        if self.fuses_span(inputs.shape):
            # The K*K*G-wide kernel, the layer's largest tensor, never reaches memory.
            features = self.hidden_features(inputs, training=training)
            weights = tf.reshape(self.span.kernel, [features.shape[-1], -1])
            arguments = (self.kernel_size, self.stride, self.groups)
            return span_involution(inputs, features, weights, self.span.bias, *arguments)
        kernel = self.generate_kernel(inputs, training=training)
        return involution(
            inputs, kernel, self.kernel_size, self.stride, self.groups, self.implementation
        )

    def compute_output_shape(self, input_shape):
        return strided_shape(input_shape, self.stride)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            stride=self.stride,
            groups=self.groups,
            reduction_ratio=self.reduction_ratio,
            implementation=self.implementation,
        )
        return config
