"""The fused batch norm against Keras' own layer: forward, gradients, moving statistics."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import predict_in_fresh_process

from involution_bench.ops import BatchNormalization
from involution_bench.ops.batch_norm import narrow_kernel

SHAPES = [(8, 5, 7, 6), (4, 1, 1, 3), (3, 9, 2, 4), (16, 6)]  # odd sizes, 1x1, flat
# Channel counts dividing 16 train on the native kernel: every such count, a
# flat input, and rows that do not fill a vector.
NARROW_SHAPES = [(8, 5, 7, 1), (3, 3, 5, 2), (2, 7, 3, 8), (5, 16), (9, 2, 3, 16)]
# Chunks of the kernel's passes: enough to split across threads, a partial last one, and
# (4 channels) a remainder after the whole vectors.
NARROW_SHAPES += [(64, 17, 15, 16), (33, 17, 17, 4)]


def twins(shape, **arguments):
    keras_layer = keras.layers.BatchNormalization(**arguments)
    fused = BatchNormalization(**arguments)
    keras_layer.build(shape)
    fused.build(shape)
    rng = np.random.default_rng(1)
    for ours, theirs in zip(fused.weights, keras_layer.weights, strict=True):
        value = rng.uniform(0.5, 1.5, theirs.shape).astype("float32")
        theirs.assign(value)
        ours.assign(value)
    return keras_layer, fused


def scaled_error(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.abs(ours - theirs).max() / max(1.0, np.abs(theirs).max()))


@pytest.mark.parametrize("shape", SHAPES + NARROW_SHAPES, ids=str)
def test_training_steps_match_keras_in_outputs_gradients_and_moving_statistics(shape):
    keras_layer, fused = twins(shape, momentum=0.8, epsilon=1e-3)
    rng = np.random.default_rng(0)
    weights = tf.constant(rng.normal(size=shape[-1]).astype("float32"))
    for _ in range(4):
        inputs = tf.constant(rng.normal(2.0, 3.0, size=shape).astype("float32"))
        results = []
        for layer in (keras_layer, fused):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs = layer(inputs, training=True)
                loss = tf.reduce_sum(tf.square(outputs) * weights)
            grads = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
            results.append((outputs, *grads))
        for theirs, ours in zip(*results, strict=True):
            assert scaled_error(ours, theirs) < 1e-5
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(
            getattr(fused, name).numpy(), getattr(keras_layer, name).numpy(), rtol=1e-5
        )
    for layer in (keras_layer, fused):
        assert [weight.name for weight in layer.weights] == [
            "gamma",
            "beta",
            "moving_mean",
            "moving_variance",
        ]
    inputs = rng.normal(size=shape).astype("float32")
    inference = [layer(inputs, training=False) for layer in (keras_layer, fused)]
    assert scaled_error(inference[1], inference[0]) < 1e-5


def float64_reference(inputs, gamma, beta, weights, epsilon=1e-3):
    """Training-mode batch norm and the gradients of sum(y^2 * weights), in float64."""
    x, gamma, beta = (tf.constant(value, tf.float64) for value in (inputs, gamma, beta))
    with tf.GradientTape() as tape:
        tape.watch([x, gamma, beta])
        axes = list(range(len(inputs.shape) - 1))
        mean = tf.reduce_mean(x, axes)
        variance = tf.reduce_mean(tf.square(x - mean), axes)
        y = (x - mean) / tf.sqrt(variance + epsilon) * gamma + beta
        loss = tf.reduce_sum(tf.square(y) * weights)
    return [y, *tape.gradient(loss, [x, gamma, beta])], mean, variance


@pytest.mark.parametrize("shape", [(64, 16, 16, 4), (128, 8, 8, 8)], ids=str)
def test_long_batches_stay_within_float32_rounding_of_a_float64_reference(shape):
    """RedNet-sized batches: the native kernel's sums in double keep it close to the
    float64 result, at least as close as Keras' own layer."""
    keras_layer, fused = twins(shape, momentum=0.0)  # momentum 0: the moving stats are the batch's
    rng = np.random.default_rng(5)
    inputs = rng.normal(2.0, 3.0, size=shape)
    weights = rng.normal(size=shape[-1])
    expected, mean, variance = float64_reference(
        inputs, fused.gamma.numpy(), fused.beta.numpy(), weights
    )
    errors = {}
    for name, layer in (("keras", keras_layer), ("ours", fused)):
        x = tf.constant(inputs, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.square(y) * weights.astype("float32"))
        results = [y, *tape.gradient(loss, [x, layer.gamma, layer.beta])]
        errors[name] = [scaled_error(a, b) for a, b in zip(results, expected, strict=True)]
    assert max(errors["ours"]) < 5e-6, errors
    assert all(o <= k * 1.5 for o, k in zip(errors["ours"], errors["keras"], strict=True)), errors
    np.testing.assert_allclose(fused.moving_mean.numpy(), mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), variance.numpy(), rtol=1e-6)


@pytest.mark.parametrize("channels", [4, 8, 16, 6, 32])
def test_training_takes_the_native_kernel_exactly_where_channels_divide_16(channels):
    if narrow_kernel(channels) is None and channels in (4, 8, 16):
        pytest.skip("no native library here")
    layer = BatchNormalization()
    layer.build((2, 3, 3, channels))
    step = tf.function(lambda x: layer(x, training=True))
    graph = step.get_concrete_function(tf.TensorSpec((2, 3, 3, channels))).graph
    kinds = {operation.type for operation in graph.get_operations()}
    assert ("InvbenchNarrowBatchNorm" in kinds) == (channels in (4, 8, 16))
    assert ("FusedBatchNormV3" in kinds) == (channels not in (4, 8, 16))
    inference = tf.function(lambda x: layer(x, training=False))
    graph = inference.get_concrete_function(tf.TensorSpec((2, 3, 3, channels))).graph
    assert "InvbenchNarrowBatchNorm" not in {operation.type for operation in graph.get_operations()}


def test_mixed_bfloat16_matches_keras_and_keeps_float32_statistics():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras_layer, fused = twins((8, 6, 6, 8))
        inputs = tf.cast(np.random.default_rng(2).normal(size=(8, 6, 6, 8)), tf.bfloat16)
        theirs, ours = keras_layer(inputs, training=True), fused(inputs, training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert ours.dtype == tf.bfloat16 and fused.moving_mean.dtype == "float32"
    # Both compute in float32 and round once to bfloat16: at most one bfloat16 step apart.
    np.testing.assert_allclose(
        ours.numpy().astype(float), theirs.numpy().astype(float), rtol=2**-7, atol=2**-7
    )
    np.testing.assert_allclose(
        fused.moving_variance.numpy(), keras_layer.moving_variance.numpy(), rtol=1e-5
    )


def test_what_the_fused_kernel_cannot_do_takes_keras_own_path():
    keras_layer, fused = twins((4, 5, 6), axis=1)  # not the last axis: unfused
    inputs = np.random.default_rng(3).normal(size=(4, 5, 6)).astype("float32")
    np.testing.assert_allclose(
        fused(inputs, training=True), keras_layer(inputs, training=True), rtol=1e-6, atol=1e-6
    )


def test_a_model_with_it_reloads_in_a_fresh_process(tmp_path):
    model = keras.Sequential([keras.Input((5, 5, 3)), BatchNormalization(name="bn")])
    inputs = np.random.default_rng(4).normal(size=(2, 5, 5, 3)).astype("float32")
    model(inputs, training=True)  # moves the statistics
    expected = model.predict(inputs, verbose=0)
    reloaded = predict_in_fresh_process(
        model, inputs, tmp_path, "bn", "involution_bench.ops.batch_norm"
    )
    np.testing.assert_array_equal(reloaded, expected)
