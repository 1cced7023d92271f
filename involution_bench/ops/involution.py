"""Involution, the op: per-position kernels applied to an NHWC tensor.

Li et al., "Involution: Inverting the Inherence of Convolution for Visual
Recognition", CVPR 2021 (arXiv 2103.06255). The Keras layer that generates the
kernels is `involution_layer.Involution`.

For output position (i, j) and channel c in group g = c // (C / G):

    out[i, j, c] = sum_{u, v} kernel[i, j, u*K + v, g] * x[i*s + u - p, j*s + v - p, c]

with TF "SAME" padding. Two implementations compute it:

- "native": a fused C++ CPU kernel (`involution_bench.ops.native`), compiled on
  first use; forward and both gradients in one pass over the data each.
- "slices": pure TensorFlow (`involution_bench.ops.slices`), a sum of K*K
  shifted views of the padded input with hand-written gradients, always
  compiled by XLA (never the K*K times larger `extract_patches` tensor). It
  runs on GPUs.

"auto" picks "native" on CPU-only machines when the kernel is available,
except where measurements favour "slices" (see `native_wins`); everywhere
else "slices". The native kernel runs in float32, float64 and bfloat16
(reading and writing bfloat16, summing in float32); float16 inputs are
widened to float32 around it and the result narrowed back.
"""

from __future__ import annotations

import tensorflow as tf

from involution_bench.ops.native import native_ops
from involution_bench.ops.slices import involution_slices

IMPLEMENTATIONS = ("auto", "native", "slices")
NATIVE_DTYPES = (tf.float32, tf.float64, tf.bfloat16)
# Run natively in float32: cast in, cast the result back (the casts' gradients
# are casts, so both gradients are the float32 kernels' too).
WIDENED_DTYPES = (tf.float16,)


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
        library = require_native()
        return in_native_dtype(
            lambda x, k: library.invbench_involution(
                x, k, kernel_size=kernel_size, stride=stride, groups=groups
            ),
            inputs,
            kernel,
        )
    return involution_slices(inputs, kernel, kernel_size, stride, groups)


def span_involution(
    inputs: tf.Tensor,
    features: tf.Tensor,
    weights: tf.Tensor,
    bias: tf.Tensor,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
) -> tf.Tensor:
    """`involution` of the kernel `features @ weights + bias`, generated inside the
    native op position by position, so that it never reaches memory.

    Args:
        inputs: `(B, H, W, C)`.
        features: `(B, ceil(H/stride), ceil(W/stride), R)`, the kernel generator's
            hidden features.
        weights: `(R, kernel_size**2 * groups)`, the span projection's weights.
        bias: `(kernel_size**2 * groups,)`, its bias.
    """
    inputs = tf.convert_to_tensor(inputs)
    features, weights, bias = (tf.cast(t, inputs.dtype) for t in (features, weights, bias))
    library = require_native()
    return in_native_dtype(
        lambda x, h, w, b: library.invbench_span_involution(
            x, h, w, b, kernel_size=kernel_size, stride=stride, groups=groups
        ),
        inputs,
        features,
        weights,
        bias,
    )


def in_native_dtype(op, *tensors: tf.Tensor) -> tf.Tensor:
    """`op(*tensors)`, widening float16 tensors to float32 and the result back."""
    dtype = tensors[0].dtype
    if dtype not in WIDENED_DTYPES:
        return op(*tensors)
    return tf.cast(op(*(tf.cast(tensor, tf.float32) for tensor in tensors)), dtype)


def require_native():
    """The native op library; RuntimeError where it cannot be had."""
    library = native_ops()
    if library is None:
        raise RuntimeError("the native involution kernel is not available")
    return library


def native_wins(group_channels: int, kernel_size: int, dtype=tf.float32) -> bool:
    """Where the native kernel beats the slices, from `invbench bench op` (forward and
    both gradients, side by side).

    - float32/float64, groups of at most 4 channels with 3x3 kernels (the
      article's model): the slices, measured up to 1.4x faster on a 2-core AMD
      EPYC. (On a 2-core Xeon, Sapphire Rapids class, native is 1.3x faster
      there: 6.2 against 7.8 ms; the rule keeps the slower CPU's choice until
      that CPU is timed again.)
    - float32 elsewhere: native, 4x (RedNet's 7x7, 16 channels a group:
      23.7 against 100.6 ms on the Xeon) to 10x.
    - bfloat16 and float16: native everywhere, 6.2x at the article's shape
      (5.8 against 35.7 ms) and 8.0x at RedNet's (20.8 against 165.4 ms) on
      the Xeon: the slices add in 16 bits without fusing as well.
    """
    if tf.as_dtype(dtype).size == 2:  # bfloat16, float16
        return True
    return group_channels > 4 or kernel_size > 3


def native_suits(dtype) -> bool:
    """Whether the native kernel can run here: CPU-only, a dtype it has (or widens
    to float32), and it builds."""
    if tf.as_dtype(dtype) not in NATIVE_DTYPES + WIDENED_DTYPES:
        return False
    return not tf.config.list_logical_devices("GPU") and native_ops() is not None


def auto_implementation(dtype, group_channels: int, kernel_size: int) -> str:
    """What implementation="auto" runs for this dtype and shape on this machine."""
    if native_suits(dtype) and native_wins(group_channels, kernel_size, dtype):
        return "native"
    return "slices"
