"""The involution op against a direct-loop reference, its gradients, and the layer."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from reference import involution_gradients_reference, involution_reference

import involution_bench  # noqa: F401  (registers the layer for loading)
from involution_bench.ops import Involution, involution
from involution_bench.ops.involution import auto_implementation
from involution_bench.ops.native import native_ops

# (batch, height, width, channels, kernel_size, stride, groups)
SHAPES = [
    (2, 5, 7, 4, 3, 1, 1),
    (2, 5, 7, 4, 3, 1, 2),
    (1, 9, 6, 8, 7, 1, 4),
    (1, 9, 6, 8, 7, 2, 2),
    (2, 7, 7, 3, 3, 2, 1),
    (3, 8, 5, 6, 3, 2, 3),
    (1, 1, 1, 2, 3, 1, 1),
    # RedNet's 16 channels per group, wider than one block of output columns
    # (16), with stride 1 and 2; stride 3 with K=5.
    (1, 5, 19, 32, 7, 1, 2),
    (2, 8, 35, 32, 3, 2, 2),
    (1, 6, 5, 6, 5, 3, 2),
    # Groups filling whole vectors, more than one block of them (13 groups of
    # 16 channels; 3 of 32), and a kernel gradient of 13 * 9 rows per column.
    (1, 4, 18, 208, 3, 2, 13),
    (1, 5, 6, 96, 5, 1, 3),
]


def random_case(shape, seed=0):
    batch, height, width, channels, kernel_size, stride, groups = shape
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, height, width, channels))
    out_h, out_w = -(-height // stride), -(-width // stride)
    kernel = rng.normal(size=(batch, out_h, out_w, kernel_size**2, groups))
    return x, kernel


native_only = pytest.mark.skipif(
    native_ops() is None, reason="the native kernel is unavailable (see test_native)"
)
IMPLEMENTATIONS = [pytest.param("native", marks=native_only), "slices", "auto"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_op_and_both_gradients_match_direct_reference(shape, implementation):
    x, kernel = random_case(shape)
    _, _, _, _, kernel_size, stride, groups = shape
    expected = involution_reference(x, kernel, kernel_size, stride, groups)
    upstream = np.random.default_rng(5).normal(size=expected.shape)
    expected_grads = involution_gradients_reference(
        x, kernel, upstream, kernel_size, stride, groups
    )
    x_t, kernel_t = tf.constant(x), tf.constant(kernel)
    with tf.GradientTape() as tape:
        tape.watch([x_t, kernel_t])
        actual = involution(x_t, kernel_t, kernel_size, stride, groups, implementation)
    grads = tape.gradient(actual, [x_t, kernel_t], output_gradients=tf.constant(upstream))
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-10, atol=1e-10)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_op_inside_an_xla_compiled_function(implementation):
    """Under jit_compile, the layer must be told to use slices; both agree with eager."""
    shape = (2, 9, 6, 8, 7, 2, 2)
    x, kernel = random_case(shape, seed=4)
    x_t, kernel_t = tf.constant(x, tf.float32), tf.constant(kernel, tf.float32)
    compiled = tf.function(lambda a, b: involution(a, b, 7, 2, 2, "slices"), jit_compile=True)
    eager = involution(x_t, kernel_t, 7, 2, 2, implementation)
    np.testing.assert_allclose(compiled(x_t, kernel_t).numpy(), eager.numpy(), atol=1e-4)


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="implementation must be one of"):
        involution(tf.zeros((1, 4, 4, 2)), tf.zeros((1, 4, 4, 9, 1)), 3, implementation="fast")


FLOAT32_EPS = 2.0**-24


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "shape",
    [(2, 6, 6, 8, 3, 1, 2), (2, 7, 35, 64, 7, 1, 4), (1, 6, 18, 208, 3, 2, 13)],
    ids=str,
)
def test_op_and_both_gradients_in_float32(shape, implementation):
    """Float32, the dtype users train in, through every code path of the native
    kernel (vector blocks, transposed kernel-gradient blocks and their tails).

    A sum of n float32 products, however ordered, is within n * 2^-24 of
    the sum of their magnitudes: the bound, with n the longest sum (the
    kernel gradient's, over a group's channels; the others', over K*K taps).
    """
    x, kernel = random_case(shape, seed=3)
    _, _, _, channels, kernel_size, stride, groups = shape
    upstream = np.random.default_rng(6).normal(
        size=involution_reference(x, kernel, kernel_size, stride, groups).shape
    )
    x32, kernel32, upstream32 = (
        a.astype(np.float32).astype(np.float64) for a in (x, kernel, upstream)
    )
    exact = (
        involution_reference(x32, kernel32, kernel_size, stride, groups),
        *involution_gradients_reference(x32, kernel32, upstream32, kernel_size, stride, groups),
    )
    magnitudes = (
        involution_reference(abs(x32), abs(kernel32), kernel_size, stride, groups),
        *involution_gradients_reference(
            abs(x32), abs(kernel32), abs(upstream32), kernel_size, stride, groups
        ),
    )
    x_t, kernel_t = tf.constant(x, tf.float32), tf.constant(kernel, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([x_t, kernel_t])
        actual = involution(x_t, kernel_t, kernel_size, stride, groups, implementation)
    grads = tape.gradient(
        actual, [x_t, kernel_t], output_gradients=tf.constant(upstream32, tf.float32)
    )
    assert actual.dtype == tf.float32
    terms = max(kernel_size**2, channels // groups) + 1
    for value, expected, magnitude in zip((actual, *grads), exact, magnitudes, strict=True):
        error = np.abs(value.numpy().astype(np.float64) - expected)
        assert np.all(error <= terms * FLOAT32_EPS * magnitude + 1e-30)


BF16_EPS = 2.0**-8  # bfloat16 keeps 8 significant bits: one rounding is within this


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", [(2, 6, 7, 32, 7, 1, 2), (1, 9, 6, 8, 3, 2, 2)], ids=str)
def test_op_and_both_gradients_in_bfloat16(shape, implementation):
    """Against the float64 reference of the same bfloat16-rounded operands.

    The native kernel sums in float32 and rounds each result to bfloat16 once,
    so it is within BF16_EPS of the exact value (plus float32 noise). The
    slices add in bfloat16, each of the n terms' additions rounding, so they
    are within n * BF16_EPS of the sum of the terms' magnitudes.
    """
    x, kernel = random_case(shape, seed=6)
    _, _, _, _, kernel_size, stride, groups = shape
    as_bf16 = lambda a: tf.constant(a, tf.bfloat16)  # noqa: E731
    x16, kernel16 = as_bf16(x), as_bf16(kernel)
    x, kernel = (t.numpy().astype(np.float64) for t in (x16, kernel16))
    upstream16 = as_bf16(np.random.default_rng(7).normal(size=(*kernel.shape[:3], x.shape[-1])))
    upstream = upstream16.numpy().astype(np.float64)
    with tf.GradientTape() as tape:
        tape.watch([x16, kernel16])
        actual = involution(x16, kernel16, kernel_size, stride, groups, implementation)
    grads = tape.gradient(actual, [x16, kernel16], output_gradients=upstream16)
    assert actual.dtype == tf.bfloat16 and all(g.dtype == tf.bfloat16 for g in grads)
    expected = [
        involution_reference(x, kernel, kernel_size, stride, groups),
        *involution_gradients_reference(x, kernel, upstream, kernel_size, stride, groups),
    ]
    magnitudes = [
        involution_reference(abs(x), abs(kernel), kernel_size, stride, groups),
        *involution_gradients_reference(
            abs(x), abs(kernel), abs(upstream), kernel_size, stride, groups
        ),
    ]
    terms = kernel_size**2 * max(1, x.shape[-1] // groups)
    native = implementation == "native" or (
        implementation == "auto"
        and auto_implementation(tf.bfloat16, x.shape[-1] // groups, kernel_size) == "native"
    )
    for value, exact, magnitude in zip([actual, *grads], expected, magnitudes, strict=True):
        error = np.abs(value.numpy().astype(np.float64) - exact)
        bound = (
            BF16_EPS * np.abs(exact) + 1e-5 * magnitude
            if native
            else terms * BF16_EPS * magnitude + BF16_EPS * np.abs(exact)
        )
        assert np.all(error <= bound), float(np.max(error - bound))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", [(2, 5, 6, 4, 3, 1, 2), (1, 7, 5, 4, 7, 2, 2)], ids=str)
def test_op_gradients_match_numeric(shape, implementation):
    """Directional derivatives of a scalar loss: tape gradients against central differences."""
    x, kernel = random_case(shape, seed=1)
    _, _, _, _, kernel_size, stride, groups = shape
    rng = np.random.default_rng(2)
    weights = rng.normal(size=involution_reference(x, kernel, kernel_size, stride, groups).shape)

    def loss(x, kernel):
        output = involution(
            tf.constant(x), tf.constant(kernel), kernel_size, stride, groups, implementation
        )
        return float(tf.reduce_sum(output * weights))

    x_t, kernel_t = tf.constant(x), tf.constant(kernel)
    with tf.GradientTape() as tape:
        tape.watch([x_t, kernel_t])
        output = involution(x_t, kernel_t, kernel_size, stride, groups, implementation)
        total = tf.reduce_sum(output * weights)
    grad_x, grad_kernel = (g.numpy() for g in tape.gradient(total, [x_t, kernel_t]))
    step = 1e-4
    for _ in range(4):
        dx, dk = rng.normal(size=x.shape), rng.normal(size=kernel.shape)
        numeric_x = (loss(x + step * dx, kernel) - loss(x - step * dx, kernel)) / (2 * step)
        numeric_k = (loss(x, kernel + step * dk) - loss(x, kernel - step * dk)) / (2 * step)
        np.testing.assert_allclose(np.sum(grad_x * dx), numeric_x, rtol=1e-7)
        np.testing.assert_allclose(np.sum(grad_kernel * dk), numeric_k, rtol=1e-7)


def test_op_rejects_groups_not_dividing_channels():
    with pytest.raises(ValueError, match="groups=2 must divide the input channels"):
        involution(tf.zeros((1, 4, 4, 3)), tf.zeros((1, 4, 4, 9, 2)), 3, 1, 2)


def test_layer_output_uses_its_generated_kernel():
    layer = Involution(kernel_size=3, stride=2, groups=2, reduction_ratio=2)
    x = tf.random.stateless_normal((2, 7, 9, 4), seed=(1, 2))
    output = layer(x)
    kernel = layer.generate_kernel(x)
    assert output.shape == (2, 4, 5, 4)
    assert kernel.shape == (2, 4, 5, 9, 2)
    expected = involution_reference(x.numpy(), kernel.numpy(), 3, 2, 2)
    np.testing.assert_allclose(output.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_layer_parameter_count_and_hidden_width():
    layer = Involution(kernel_size=3, groups=1, reduction_ratio=2)
    layer.build((None, 32, 32, 3))
    # reduce 3->1 (3+1), batch norm on 1 channel (4), span 1->9 (9+9)
    assert layer.count_params() == 4 + 4 + 18
    assert layer.reduce.filters == 1


def test_layer_works_on_unknown_spatial_size():
    inputs = keras.Input(shape=(None, None, 4))
    outputs = Involution(kernel_size=3, stride=2, groups=2)(inputs)
    model = keras.Model(inputs, outputs)
    assert tuple(outputs.shape) == (None, None, None, 4)
    for height, width in [(5, 5), (8, 3), (1, 1)]:
        result = model(tf.zeros((1, height, width, 4)))
        assert result.shape == (1, -(-height // 2), -(-width // 2), 4)


def test_layer_rejects_groups_not_dividing_channels():
    with pytest.raises(ValueError, match="groups=2 must divide the input channels \\(3\\)"):
        Involution(kernel_size=3, groups=2)(tf.zeros((1, 4, 4, 3)))


@pytest.mark.parametrize("bad", [{"kernel_size": 0}, {"kernel_size": 3, "stride": -1}])
def test_layer_rejects_non_positive_arguments(bad):
    with pytest.raises(ValueError, match="must be a positive integer"):
        Involution(**bad)


def test_layer_config_round_trip():
    layer = Involution(kernel_size=7, stride=2, groups=4, reduction_ratio=8, name="inv")
    config = layer.get_config()
    assert {k: config[k] for k in ("kernel_size", "stride", "groups", "reduction_ratio")} == {
        "kernel_size": 7,
        "stride": 2,
        "groups": 4,
        "reduction_ratio": 8,
    }
    clone = Involution.from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert isinstance(keras.saving.deserialize_keras_object(serialized), Involution)


def test_model_saves_and_reloads_with_identical_outputs(tmp_path):
    inputs = keras.Input(shape=(9, 9, 4))
    hidden = Involution(kernel_size=3, stride=2, groups=2, reduction_ratio=2, name="inv")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(4, 9, 9, 4)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.zeros((4, 3)), epochs=1, verbose=0)  # move batch-norm statistics
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(reloaded.get_layer("inv"), Involution)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_model_saved_before_the_op_moved_to_ops_still_loads():
    """tests/fixtures/saved-before-ops-move.keras was saved when the layer lived in
    `involution_bench.layers`; its registered name must keep it loadable."""
    fixtures = Path(__file__).parent / "fixtures"
    model = keras.saving.load_model(fixtures / "saved-before-ops-move.keras", safe_mode=True)
    assert isinstance(model.get_layer("inv"), Involution)
    images = np.load(fixtures / "saved-before-ops-move-images.npy")
    np.testing.assert_allclose(
        model.predict(images, verbose=0),
        np.load(fixtures / "saved-before-ops-move-logits.npy"),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("kernel_size", [2, 4])
def test_an_even_kernel_is_refused_by_the_involution_layer_as_by_attention(kernel_size):
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        Involution(kernel_size=kernel_size)
