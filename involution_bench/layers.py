"""Involution: the op and the Keras layer.

Li et al., "Involution: Inverting the Inherence of Convolution for Visual
Recognition", CVPR 2021 (arXiv 2103.06255). The layer follows the official
implementation (github.com/d-li14/involution): a kernel generated per
position by a 1x1 reduce convolution, batch norm, ReLU and a 1x1 span
convolution, shared by the channels of a contiguous group.

For output position (i, j) and channel c in group g = c // (C / G):

    out[i, j, c] = sum_{u, v} kernel[i, j, u*K + v, g] * x[i*s + u - p, j*s + v - p, c]

with TF "SAME" padding. Two implementations compute it:

- "native": a fused C++ CPU kernel (`involution_bench.native`), compiled on
  first use; forward and both gradients in one pass over the data each.
- "slices": pure TensorFlow (`involution_bench.slices`), a sum of K*K
  shifted views of the padded input with hand-written gradients, always
  compiled by XLA (never the K*K times larger `extract_patches` tensor). It
  runs on GPUs.

"auto" picks "native" on CPU-only machines for float32/float64 when the
kernel is available, except where measurements favour "slices" (see
`native_wins`); everywhere else "slices".
"""

from __future__ import annotations

import keras
import tensorflow as tf

from involution_bench.native import native_ops
from involution_bench.slices import involution_slices

IMPLEMENTATIONS = ("auto", "native", "slices")
NATIVE_DTYPES = (tf.float32, tf.float64)


def involution(
    inputs: tf.Tensor,
    kernel: tf.Tensor,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    implementation: str = "auto",
) -> tf.Tensor:
    """Apply per-position involution kernels to an NHWC tensor.

    Args:
        inputs: `(B, H, W, C)`; C must be known and divisible by `groups`.
        kernel: `(B, ceil(H/stride), ceil(W/stride), kernel_size**2, groups)`,
            the K*K axis in row-major (u*K + v) order.
        kernel_size: K, the kernel's height and width.
        stride: step between output positions.
        groups: G, contiguous channel blocks that share one kernel.
        implementation: "auto", "native" or "slices" (see the module docstring).

    Returns:
        `(B, ceil(H/stride), ceil(W/stride), C)`.
    """
    inputs = tf.convert_to_tensor(inputs)
    kernel = tf.cast(kernel, inputs.dtype)
    channels = inputs.shape[-1]
    if channels is None or channels % groups:
        raise ValueError(f"groups={groups} must divide the input channels ({channels})")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if implementation == "auto":
        implementation = auto_implementation(inputs.dtype, channels // groups, kernel_size)
    if implementation == "native":
        library = native_ops()
        if library is None:
            raise RuntimeError("the native involution kernel is not available")
        return library.invbench_involution(
            inputs, kernel, kernel_size=kernel_size, stride=stride, groups=groups
        )
    return involution_slices(inputs, kernel, kernel_size, stride, groups)


def native_wins(group_channels: int, kernel_size: int) -> bool:
    """Measured on a 2-core AVX-512 CPU (`bench.py`): XLA's fused slices are up to
    1.4x faster than the native kernel for groups of at most 4 channels with
    3x3 kernels (the article's model); the native kernel wins everywhere else."""
    return group_channels > 4 or kernel_size > 3


def native_suits(dtype) -> bool:
    """Whether the native kernel can run here: CPU-only, a dtype it has, and it builds."""
    if tf.as_dtype(dtype) not in NATIVE_DTYPES or tf.config.list_logical_devices("GPU"):
        return False
    return native_ops() is not None


def auto_implementation(dtype, group_channels: int, kernel_size: int) -> str:
    """What implementation="auto" runs for this dtype and shape on this machine."""
    if native_suits(dtype) and native_wins(group_channels, kernel_size):
        return "native"
    return "slices"


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
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"Involution implementation must be one of {IMPLEMENTATIONS}, "
                f"got {implementation!r}"
            )
        self.implementation = implementation
        for arg, value in [
            ("kernel_size", kernel_size),
            ("stride", stride),
            ("groups", groups),
            ("reduction_ratio", reduction_ratio),
        ]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Involution {arg} must be a positive integer, got {value!r}")
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
        self.reduce = keras.layers.Conv2D(
            max(1, channels // self.reduction_ratio), 1, name="reduce"
        )
        self.norm = keras.layers.BatchNormalization(name="norm")
        self.span = keras.layers.Conv2D(self.kernel_size**2 * self.groups, 1, name="span")
        self.channels = channels
        shape = tuple(input_shape)
        if self.pool is not None:
            self.pool.build(shape)
            shape = self.pool.compute_output_shape(shape)
        self.reduce.build(shape)
        shape = self.reduce.compute_output_shape(shape)
        self.norm.build(shape)
        self.span.build(shape)

    def generate_kernel(self, inputs, training=None) -> tf.Tensor:
        """The kernel this layer applies to `inputs`: `(B, H', W', K*K, G)`."""
        features = self.pool(inputs) if self.pool is not None else inputs
        features = self.reduce(features)
        features = tf.nn.relu(self.norm(features, training=training))
        kernel = self.span(features)
        shape = tf.shape(kernel)
        return tf.reshape(kernel, [shape[0], shape[1], shape[2], self.kernel_size**2, self.groups])

    def resolved_implementation(self) -> str:
        """ "native" or "slices": what `call` runs (the layer must be built)."""
        if self.implementation != "auto":
            return self.implementation
        group_channels = self.channels // self.groups
        return auto_implementation(self.compute_dtype, group_channels, self.kernel_size)

    def call(self, inputs, training=None):
        kernel = self.generate_kernel(inputs, training=training)
        return involution(
            inputs, kernel, self.kernel_size, self.stride, self.groups, self.implementation
        )

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape

        def scaled(size):
            return None if size is None else -(-size // self.stride)

        return (batch, scaled(height), scaled(width), channels)

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
