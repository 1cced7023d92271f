"""invbench's Conv2D against Keras' own: 1x1 as a matmul (strided: after a native
subsample), the rest unchanged."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import predict_in_fresh_process

from involution_bench.models import build_model, layer_costs, prepare_for_xla
from involution_bench.ops import Conv2D
from involution_bench.ops.involution_layer import Involution
from involution_bench.ops.native import native_ops

native_only = pytest.mark.skipif(
    native_ops() is None, reason="the native kernels are unavailable (see test_native)"
)


def twins(input_shape, *arguments, **options):
    ours, theirs = Conv2D(*arguments, **options), keras.layers.Conv2D(*arguments, **options)
    ours.build(input_shape)
    theirs.build(input_shape)
    rng = np.random.default_rng(0)
    for mine, keras_weight in zip(ours.weights, theirs.weights, strict=True):
        value = rng.normal(size=keras_weight.shape).astype("float32")
        mine.assign(value)
        keras_weight.assign(value)
    return ours, theirs


def forward_and_gradients(layer, inputs):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs)
        loss = tf.reduce_sum(tf.square(tf.cast(outputs, tf.float32)))
    return [outputs, *tape.gradient(loss, [inputs, *layer.trainable_weights])]


@pytest.mark.parametrize(
    "input_shape", [(4, 5, 7, 6), (3, 1, 1, 5), (2, 9, 2, 3), (5, 4, 4, 1)], ids=str
)
@pytest.mark.parametrize("use_bias", [True, False])
def test_a_pointwise_convolution_matches_keras_forward_and_in_every_gradient(input_shape, use_bias):
    ours, theirs = twins(input_shape, 8, 1, use_bias=use_bias)
    assert ours.pointwise
    inputs = tf.constant(np.random.default_rng(1).normal(size=input_shape).astype("float32"))
    results = zip(
        forward_and_gradients(ours, inputs), forward_and_gradients(theirs, inputs), strict=True
    )
    for mine, keras_value in results:
        np.testing.assert_allclose(mine, keras_value, rtol=1e-5, atol=1e-5)
    assert [weight.name for weight in ours.weights] == [weight.name for weight in theirs.weights]


@pytest.mark.parametrize(
    "arguments",
    [
        {"kernel_size": 3, "padding": "same"},
        {"kernel_size": 3, "strides": 2, "padding": "same"},
        {"kernel_size": 1, "dilation_rate": 2},
        {"kernel_size": 1, "groups": 2},
    ],
    ids=str,
)
def test_every_other_convolution_is_keras_own(arguments):
    ours, theirs = twins((2, 6, 6, 4), 4, **arguments)
    assert not ours.pointwise and ours.subsampling_library(tf.float32) is None
    inputs = np.random.default_rng(2).normal(size=(2, 6, 6, 4)).astype("float32")
    np.testing.assert_array_equal(ours(inputs), theirs(inputs))


@native_only
@pytest.mark.parametrize(
    "input_shape, strides, padding",
    [
        ((3, 7, 9, 5), 2, "same"),  # odd sizes: the last row and column are read
        ((2, 8, 8, 4), 2, "valid"),
        ((2, 8, 9, 4), (2, 3), "same"),
        ((2, 5, 6, 3), 3, "valid"),
        ((1, 1, 1, 2), 2, "same"),
    ],
    ids=str,
)
@pytest.mark.parametrize("use_bias", [True, False])
def test_a_strided_pointwise_convolution_subsamples_and_matches_keras(
    input_shape, strides, padding, use_bias
):
    ours, theirs = twins(input_shape, 6, 1, strides=strides, padding=padding, use_bias=use_bias)
    assert not ours.pointwise and ours.subsampling_library(tf.float32) is not None
    inputs = tf.constant(np.random.default_rng(5).normal(size=input_shape).astype("float32"))
    mine, keras_values = forward_and_gradients(ours, inputs), forward_and_gradients(theirs, inputs)
    assert mine[0].shape == keras_values[0].shape
    for value, keras_value in zip(mine, keras_values, strict=True):
        np.testing.assert_allclose(value, keras_value, rtol=1e-5, atol=1e-5)


@native_only
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_the_subsample_op_and_its_gradient_are_strided_slices(dtype):
    library = native_ops()
    rng = np.random.default_rng(6)
    x = tf.cast(rng.normal(size=(2, 7, 5, 3)), dtype)
    upstream = tf.cast(rng.normal(size=(2, 4, 2, 3)), dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        subsampled = library.invbench_subsample(x, row_stride=2, col_stride=3)
    gradient = tape.gradient(subsampled, x, output_gradients=upstream)
    np.testing.assert_array_equal(subsampled, x[:, ::2, ::3, :])
    expected = np.zeros(x.shape, np.float64)
    expected[:, ::2, ::3, :] = np.asarray(upstream, np.float64)
    assert gradient.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(gradient, np.float64), expected)


def test_under_xla_a_strided_pointwise_convolution_stays_a_convolution():
    model = build_model(
        [("conv2d", {"filters": 4, "kernel_size": 1, "strides": 2})], (6, 6, 3), "shortcut"
    )
    prepare_for_xla(model)
    conv = model.layers[1]
    assert conv.subsampling_library(tf.float32) is None
    inputs = np.random.default_rng(7).normal(size=(2, 6, 6, 3)).astype("float32")
    compiled = tf.function(model, jit_compile=True)
    np.testing.assert_allclose(compiled(inputs), model(inputs), rtol=1e-5, atol=1e-6)
    assert "native" not in conv.get_config()  # a run-time choice, not saved


@pytest.mark.parametrize("strides", [1, 2])
def test_mixed_bfloat16_computes_in_bfloat16_as_keras_does(strides):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        ours, theirs = twins((4, 6, 6, 8), 16, 1, strides=strides)
        inputs = tf.cast(np.random.default_rng(3).normal(size=(4, 6, 6, 8)), tf.bfloat16)
        mine, keras_values = (
            forward_and_gradients(ours, inputs),
            forward_and_gradients(theirs, inputs),
        )
    finally:
        keras.config.set_dtype_policy(previous)
    assert mine[0].dtype == tf.bfloat16 and ours.kernel.dtype == "float32"
    for value, keras_value in zip(mine, keras_values, strict=True):
        scale = max(1.0, float(np.abs(np.asarray(keras_value, np.float64)).max()))
        np.testing.assert_allclose(
            np.asarray(value, np.float64), np.asarray(keras_value, np.float64), atol=2**-7 * scale
        )


def test_models_and_involution_build_it_and_count_its_multiply_adds():
    model = build_model(
        [("conv2d", {"filters": 4, "kernel_size": 1}), ("involution", {"kernel_size": 3})],
        (6, 6, 3),
        "pointwise",
    )
    conv = model.layers[1]
    involution = model.layers[2]
    assert type(conv) is Conv2D and conv.pointwise
    assert isinstance(involution, Involution)
    assert type(involution.reduce) is Conv2D and type(involution.span) is Conv2D
    assert layer_costs(model)[0].macs == 6 * 6 * 4 * 3
    keras_model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 1)])
    assert layer_costs(keras_model)[0].macs == 6 * 6 * 4 * 3  # models saved before it


@pytest.mark.parametrize("strides", [1, 2])
def test_a_model_with_it_reloads_in_a_fresh_process(tmp_path, strides):
    model = keras.Sequential(
        [keras.Input((5, 5, 3)), Conv2D(4, 1, strides=strides, name="pointwise")]
    )
    inputs = np.random.default_rng(4).normal(size=(2, 5, 5, 3)).astype("float32")
    expected = model.predict(inputs, verbose=0)
    reloaded = predict_in_fresh_process(
        model, inputs, tmp_path, "pointwise", "involution_bench.ops.conv2d"
    )
    np.testing.assert_array_equal(reloaded, expected)
