"""The narrow native product (involution's reduce projection) against plain products:
the op and its gradient, the layer against Keras' Conv2D, and where it is used."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from involution_bench.models import prepare_for_xla
from involution_bench.ops import Conv2D
from involution_bench.ops.involution_layer import Involution
from involution_bench.ops.native import native_ops

library = native_ops()
pytestmark = pytest.mark.skipif(
    library is None, reason="the native kernels are unavailable (see test_native)"
)


def product_and_gradients(rows, depth, width, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(rows, depth)), rng.normal(size=(depth, width))
    bias, dz = rng.normal(size=width), rng.normal(size=(rows, width))
    arrays = [tf.constant(value, dtype) for value in (x, w, bias, dz)]
    z = library.invbench_narrow_product(*arrays[:3])
    gradients = library.invbench_narrow_product_grad(arrays[3], arrays[0], arrays[1])
    expected = [x @ w + bias, dz @ w.T, x.T @ dz, dz.sum(axis=0)]
    return [z, *gradients], expected


@pytest.mark.parametrize(
    "rows, depth, width",
    [
        (13, 16, 4),  # a partial block of rows
        (1100, 32, 8),  # three chunks of the weights' sums, the last partial
        (600, 64, 16),
        (257, 5, 3),  # widths without a compile-time form
        (300, 24, 17),
        (64, 16, 64),
        (1, 1, 1),
    ],
    ids=str,
)
def test_the_op_and_its_gradient_are_the_plain_products_in_float64(rows, depth, width):
    actual, expected = product_and_gradients(rows, depth, width, tf.float64)
    for mine, plain in zip(actual, expected, strict=True):
        np.testing.assert_allclose(mine, plain, rtol=1e-12, atol=1e-12)


def test_in_float32_it_is_within_float_rounding_and_the_same_on_every_run():
    first, expected = product_and_gradients(70_000, 16, 8, tf.float32)  # on the thread pool
    again, _ = product_and_gradients(70_000, 16, 8, tf.float32)
    for mine, repeat, plain in zip(first, again, expected, strict=True):
        np.testing.assert_array_equal(mine, repeat)
        scale = np.abs(plain).max()
        np.testing.assert_allclose(mine, plain, rtol=0, atol=2e-6 * scale)


@pytest.mark.parametrize(
    "x_shape, w_shape, bias_shape, message",
    [
        ((4, 65), (65, 4), (4,), "at most 64"),
        ((4, 8), (8, 65), (65,), "at most 64"),
        ((4, 8), (7, 4), (4,), "w must have 8 rows"),
        ((4, 8), (8, 4), (5,), "bias must be"),
    ],
)
def test_shapes_it_cannot_take_are_errors_naming_the_operand(x_shape, w_shape, bias_shape, message):
    operands = [tf.zeros(shape) for shape in (x_shape, w_shape, bias_shape)]
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        library.invbench_narrow_product(*operands)


def twins(input_shape, filters, use_bias, dtype="float32"):
    ours = Conv2D(filters, 1, use_bias=use_bias, dtype=dtype)
    theirs = keras.layers.Conv2D(filters, 1, use_bias=use_bias, dtype=dtype)
    ours.build(input_shape)
    theirs.build(input_shape)
    rng = np.random.default_rng(0)
    for mine, keras_weight in zip(ours.weights, theirs.weights, strict=True):
        value = rng.normal(size=keras_weight.shape)
        mine.assign(value)
        keras_weight.assign(value)
    return ours, theirs


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize(
    "input_shape, filters", [((3, 16, 16, 16), 4), ((2, 8, 8, 32), 8), ((5, 3, 7, 48), 16)], ids=str
)
def test_the_layer_is_keras_conv2d_forward_and_in_every_gradient(input_shape, filters, use_bias):
    ours, theirs = twins(input_shape, filters, use_bias, dtype="float64")
    inputs = tf.constant(np.random.default_rng(1).normal(size=input_shape))
    assert ours.narrow_product_library(inputs) is not None
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.sin(layer(inputs)))
        results.append([layer(inputs), *tape.gradient(loss, [inputs, *layer.trainable_weights])])
    for mine, keras_value in zip(*results, strict=True):
        np.testing.assert_allclose(mine, keras_value, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "input_shape, filters, dtype, native, used",
    [
        ((None, 16, 16, 16), 4, "float32", True, True),  # RedNet's first reduce projection
        ((None, 4, 4, 64), 16, "float32", True, True),  # its last
        ((None, 16, 16, 32), 16, "float32", True, False),  # a bottleneck's: oneDNN's is faster
        ((None, 8, 8, 16), 17, "float32", True, False),  # too wide
        ((None, 8, 8, 32), 6, "float32", True, False),  # no compile-time form: slower
        ((None, 16, 16, 8), 16, "float32", True, False),  # inputs in part of a vector
        ((None, 8, 8, 80), 4, "float32", True, False),  # too deep
        ((None, 16, 16, 16), 4, "bfloat16", True, False),  # no bfloat16 form
        ((None, 16, 16, 16), 4, "float32", False, False),  # under XLA
        ((None, None, None, 16), 4, "float32", True, False),  # the work is unknown
    ],
    ids=str,
)
def test_only_narrow_products_take_the_native_kernel(input_shape, filters, dtype, native, used):
    layer = Conv2D(filters, 1)
    layer.native = native
    inputs = keras.KerasTensor(input_shape, dtype=dtype)
    assert (layer.narrow_product_library(inputs) is not None) == used


def test_xla_preparation_turns_it_off_in_a_model():
    model = keras.Sequential([keras.Input((16, 16, 16)), Conv2D(4, 1)])
    prepare_for_xla(model)
    assert model.layers[0].narrow_product_library(tf.zeros((1, 16, 16, 16))) is None


def test_an_involution_layer_trains_the_same_with_and_without_it():
    shape = (4, 16, 16, 32)
    inputs = tf.constant(np.random.default_rng(3).normal(size=shape).astype("float32"))
    results = []
    for narrow in (True, False):
        keras.utils.set_random_seed(5)
        layer = Involution(kernel_size=7, stride=2, groups=2, reduction_ratio=4)
        layer.build(shape)
        if not narrow:
            layer.reduce.narrow_product_library = lambda inputs: None
        else:
            assert layer.reduce.narrow_product_library(layer.pool(inputs)) is not None
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.square(layer(inputs, training=True)))
        gradients = tape.gradient(loss, [inputs, *layer.trainable_weights])
        moving = [layer.norm.moving_mean, layer.norm.moving_variance]
        results.append([loss, *gradients, *moving])
    for with_it, without in zip(*results, strict=True):
        np.testing.assert_allclose(with_it, without, rtol=2e-5, atol=2e-5)
