"""The span projection fused into the native involution op, against a direct-loop
reference of the separate ops, and the layer's choice of it."""

from __future__ import annotations

import types

import numpy as np
import pytest
import tensorflow as tf
from reference import involution_gradients_reference, involution_reference

from involution_bench.ops import Involution, involution
from involution_bench.ops.involution import span_involution
from involution_bench.ops.native import native_ops

pytestmark = pytest.mark.skipif(
    native_ops() is None, reason="the native kernel is unavailable (see test_native)"
)

# (batch, height, width, channels, kernel_size, stride, groups, hidden)
SHAPES = [
    (2, 5, 7, 4, 3, 1, 1, 2),
    (1, 9, 6, 8, 7, 2, 2, 3),
    (2, 8, 35, 32, 3, 2, 2, 5),
    (3, 8, 5, 6, 3, 2, 3, 1),
    # RedNet's span shapes, which take the compile-time forms: (K*K*G, R) =
    # (49, 4), (98, 8) and (196, 16); the first also wider than a block.
    (2, 6, 19, 16, 7, 1, 1, 4),
    (2, 9, 8, 32, 7, 2, 2, 8),
    (2, 4, 4, 64, 7, 1, 4, 16),
]


def random_case(shape, seed=0):
    batch, height, width, channels, kernel_size, stride, groups, hidden = shape
    rng = np.random.default_rng(seed)
    out_h, out_w = -(-height // stride), -(-width // stride)
    count = kernel_size**2 * groups
    return (
        rng.normal(size=(batch, height, width, channels)),
        np.maximum(rng.normal(size=(batch, out_h, out_w, hidden)), 0),  # after a ReLU
        rng.normal(size=(hidden, count)) * 0.3,
        rng.normal(size=(count,)),
        rng.normal(size=(batch, out_h, out_w, channels)),
    )


def reference(x, h, w, b, upstream, kernel_size, stride, groups):
    """Output and the gradients of x, h, w and b, through the kernel h @ w + b."""
    kernel = (h @ w + b).reshape(*h.shape[:3], kernel_size**2, groups)
    output = involution_reference(x, kernel, kernel_size, stride, groups)
    dx, dk = involution_gradients_reference(x, kernel, upstream, kernel_size, stride, groups)
    dk = dk.reshape(*h.shape[:3], -1)
    return output, dx, dk @ w.T, np.einsum("bijr,bijn->rn", h, dk), dk.sum(axis=(0, 1, 2))


def fused(arrays, dtype, kernel_size, stride, groups):
    x, h, w, b, upstream = (tf.constant(a, dtype) for a in arrays)
    with tf.GradientTape() as tape:
        tape.watch([x, h, w, b])
        output = span_involution(x, h, w, b, kernel_size, stride, groups)
    return [output, *tape.gradient(output, [x, h, w, b], output_gradients=upstream)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_the_fused_op_and_its_four_gradients_match_the_reference(shape):
    arrays = random_case(shape)
    _, _, _, _, kernel_size, stride, groups, _ = shape
    expected = reference(*arrays, kernel_size, stride, groups)
    actual = fused(arrays, tf.float64, kernel_size, stride, groups)
    for value, exact in zip(actual, expected, strict=True):
        assert value.shape == exact.shape
        np.testing.assert_allclose(value.numpy(), exact, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_in_float32_it_is_within_float32_rounding_of_the_reference(shape):
    arrays = [a.astype(np.float32).astype(np.float64) for a in random_case(shape, seed=1)]
    _, _, _, _, kernel_size, stride, groups, _ = shape
    expected = reference(*arrays, kernel_size, stride, groups)
    actual = fused(arrays, tf.float32, kernel_size, stride, groups)
    for value, exact in zip(actual, expected, strict=True):
        assert value.dtype == tf.float32
        scale = np.abs(exact).max() + 1e-30
        np.testing.assert_allclose(value.numpy(), exact, rtol=0, atol=1e-5 * scale)


def test_in_bfloat16_it_sums_in_float32():
    """Against the float64 reference of the same bfloat16 operands. The output and
    the input gradient round once. The span's gradients also round the kernel
    gradient once on the way, as the separate ops do: within 2^-8 of the sum of
    the terms' magnitudes."""
    shape = (2, 6, 7, 32, 7, 1, 2, 4)
    arrays = [tf.constant(a, tf.bfloat16).numpy().astype(np.float64) for a in random_case(shape)]
    expected = reference(*arrays, 7, 1, 2)
    magnitudes = reference(*(np.abs(a) for a in arrays), 7, 1, 2)
    actual = fused(arrays, tf.bfloat16, 7, 1, 2)
    for index, (value, exact, magnitude) in enumerate(
        zip(actual, expected, magnitudes, strict=True)
    ):
        assert value.dtype == tf.bfloat16
        error = np.abs(value.numpy().astype(np.float64) - exact)
        rounded_on_the_way = 2.0**-8 * magnitude if index >= 2 else 1e-5 * magnitude
        assert np.all(error <= 2.0**-8 * np.abs(exact) + rounded_on_the_way), index


def test_the_layer_fuses_natively_where_there_are_enough_positions():
    native = Involution(kernel_size=7, groups=1, reduction_ratio=4, implementation="native")
    native.build((None, 16, 16, 16))
    assert native.fuses_span((None, 16, 16, 16)) and native.fuses_span((None, 8, 8, 16))
    assert native.fuses_span((None, 4, 4, 16))  # RedNet's smallest layer
    assert not native.fuses_span((None, 2, 2, 16))  # not measured there
    assert not native.fuses_span((None, None, None, 16))
    slices = Involution(kernel_size=7, groups=1, reduction_ratio=4, implementation="slices")
    slices.build((None, 16, 16, 16))
    assert not slices.fuses_span((None, 16, 16, 16))


def separate_call(self, inputs, training=None):
    kernel = self.generate_kernel(inputs, training=training)
    return involution(inputs, kernel, self.kernel_size, self.stride, self.groups, "native")


@pytest.mark.parametrize("stride, groups", [(1, 1), (2, 2)])
def test_the_fused_layer_trains_as_the_separate_ops_do(stride, groups):
    """Output and every weight's gradient, in training, against the same layer
    with the kernel generated by its span layer and applied by the plain op."""
    layer = Involution(kernel_size=7, stride=stride, groups=groups, reduction_ratio=4)
    x = tf.random.stateless_normal((3, 16, 16, 32), seed=(3, 4))
    layer.build(x.shape)
    assert layer.fuses_span(x.shape)
    # The reduce convolution's bias comes before a batch norm: its gradient is
    # zero but for rounding, so it is left out.
    weights = [w for w in layer.trainable_weights if w is not layer.reduce.bias]
    results = []
    for call in (None, separate_call):
        if call is not None:
            layer.call = types.MethodType(call, layer)
        with tf.GradientTape() as tape:
            tape.watch(x)
            output = layer(x, training=True)
            loss = tf.reduce_sum(output * tf.sin(output))
        results.append([output, *tape.gradient(loss, [x, *weights])])
    for mine, theirs in zip(*results, strict=True):
        scale = float(tf.reduce_max(tf.abs(theirs)))
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=0, atol=2e-5 * scale)
