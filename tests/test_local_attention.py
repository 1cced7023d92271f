"""LocalSelfAttention against a direct NumPy reference, forward and gradients."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from involution_bench.ops import LocalSelfAttention
from involution_bench.ops.native import native_ops
from involution_bench.ops.neighbourhood import (
    full_embedding,
    neighbourhood_logits,
    neighbourhood_softmax,
)

IMPLEMENTATIONS = ["slices"] + (["native"] if native_ops() is not None else [])


def reference_attention(x, projection, rows, cols, kernel_size, heads, stride):
    """Stand-alone self-attention written as loops over positions (float64)."""
    batch, height, width, channels = x.shape
    depth, pad = channels // heads, kernel_size // 2
    q, k, v = np.split(x @ projection, 3, axis=-1)
    out = np.zeros_like(q)
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                for h in range(heads):
                    part = slice(h * depth, (h + 1) * depth)
                    logits, neighbours = [], []
                    for u in range(kernel_size):
                        for w in range(kernel_size):
                            y, z = i + u - pad, j + w - pad
                            if not (0 <= y < height and 0 <= z < width):
                                continue  # masked: outside keys take no weight at all
                            relative = np.concatenate([rows[u], cols[w]])
                            logits.append(q[b, i, j, part] @ (k[b, y, z, part] + relative))
                            neighbours.append(v[b, y, z, part])
                    logits = np.array(logits) / np.sqrt(depth)
                    weights = np.exp(logits - logits.max())
                    weights /= weights.sum()
                    out[b, i, j, part] = weights @ np.array(neighbours)
    return average_pool_same(out, stride)


def average_pool_same(x, stride):
    """TF's "SAME" average pooling with window = stride: padding is left out of the mean."""
    if stride == 1:
        return x
    batch, height, width, channels = x.shape
    out_h, out_w = -(-height // stride), -(-width // stride)
    top = max((out_h - 1) * stride + stride - height, 0) // 2
    left = max((out_w - 1) * stride + stride - width, 0) // 2
    out = np.zeros((batch, out_h, out_w, channels))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = max(i * stride - top, 0), max(j * stride - left, 0)
            r1, c1 = min(i * stride - top + stride, height), min(j * stride - left + stride, width)
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


def make_layer(kernel_size, heads, stride, implementation, shape):
    layer = LocalSelfAttention(
        kernel_size, heads, stride, implementation=implementation, dtype="float64"
    )
    layer.build(shape)
    rng = np.random.default_rng(1)
    for weight in layer.weights:  # non-trivial values, embeddings included
        weight.assign(rng.normal(scale=0.5, size=weight.shape))
    return layer


def reference_of(layer, x):
    return reference_attention(
        x,
        layer.projection.numpy(),
        layer.row_embedding.numpy(),
        layer.column_embedding.numpy(),
        layer.kernel_size,
        layer.heads,
        layer.stride,
    )


CASES = [
    # (batch, height, width, channels), kernel_size, heads, stride
    ((2, 5, 6, 4), 3, 2, 1),
    ((1, 7, 5, 6), 5, 3, 2),  # odd sizes, a kernel wider than the border
    ((1, 4, 4, 8), 7, 2, 1),  # the neighbourhood covers the whole image
    ((1, 6, 6, 5), 3, 1, 3),  # an odd head depth splits 2 + 3
]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("shape", "kernel_size", "heads", "stride"), CASES)
def test_matches_the_reference(implementation, shape, kernel_size, heads, stride):
    layer = make_layer(kernel_size, heads, stride, implementation, shape)
    x = np.random.default_rng(2).normal(size=shape)
    np.testing.assert_allclose(layer(x).numpy(), reference_of(layer, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("shape", "kernel_size", "heads", "stride"), CASES[:2])
def test_gradients_match_finite_differences_of_the_reference(
    implementation, shape, kernel_size, heads, stride
):
    layer = make_layer(kernel_size, heads, stride, implementation, shape)
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape)
    upstream = rng.normal(size=layer.compute_output_shape(shape))
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = tf.reduce_sum(layer(inputs) * upstream)
    sources = [inputs, *layer.weights]
    gradients = [g.numpy() for g in tape.gradient(loss, sources)]
    values = [x, *(w.numpy() for w in layer.weights)]

    def reference_loss(changed_values):
        probe = make_layer(kernel_size, heads, stride, implementation, shape)
        for weight, value in zip(probe.weights, changed_values[1:], strict=True):
            weight.assign(value)
        return float((reference_of(probe, changed_values[0]) * upstream).sum())

    eps = 1e-6
    for which, (value, gradient) in enumerate(zip(values, gradients, strict=True)):
        for flat in rng.choice(value.size, size=min(4, value.size), replace=False):
            index = np.unravel_index(flat, value.shape)
            plus, minus = [v.copy() for v in values], [v.copy() for v in values]
            plus[which][index] += eps
            minus[which][index] -= eps
            numeric = (reference_loss(plus) - reference_loss(minus)) / (2 * eps)
            np.testing.assert_allclose(gradient[index], numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(len(IMPLEMENTATIONS) < 2, reason="the native kernel is not available")
def test_both_logit_implementations_agree_with_gradients():
    rng = np.random.default_rng(4)
    queries = tf.constant(rng.normal(size=(2, 9, 7, 32)), tf.float32)
    keys = tf.constant(rng.normal(size=(2, 9, 7, 32)), tf.float32)
    upstream = rng.normal(size=(2, 9, 7, 25, 2)).astype("float32")
    results = []
    for implementation in IMPLEMENTATIONS:
        with tf.GradientTape() as tape:
            tape.watch([queries, keys])
            logits = neighbourhood_logits(queries, keys, 5, 2, implementation)
            loss = tf.reduce_sum(logits * upstream)
        results.append([logits.numpy(), *(g.numpy() for g in tape.gradient(loss, [queries, keys]))])
    for slices_value, native_value in zip(*results, strict=True):
        np.testing.assert_allclose(native_value, slices_value, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(len(IMPLEMENTATIONS) < 2, reason="the native kernel is not available")
@pytest.mark.parametrize(
    ("shape", "kernel_size", "heads"),
    [
        ((2, 9, 7, 8), 7, 1),
        ((2, 6, 19, 24), 7, 3),  # wider than a block of columns
        ((1, 5, 3, 20), 3, 5),  # narrower than the narrowest block
        ((1, 4, 6, 14), 5, 7),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("factored", [False, True], ids=["full embedding", "factored embedding"])
def test_the_native_weights_match_the_slices_in_float64(shape, kernel_size, heads, dtype, factored):
    # The one-op weights (logits kernel + softmax epilogue) and their gradients
    # for the queries, keys and embedding, against the slices path in float64.
    # A factored embedding, (K, depth) as the layer gives it, runs the native
    # ops' own path; the slices expand it (`full_embedding`) and differentiate that.
    rng = np.random.default_rng(11)
    depth = shape[-1] // heads
    queries, keys = (tf.constant(rng.normal(size=shape), dtype) for _ in range(2))
    rows = kernel_size if factored else kernel_size**2
    relative = tf.constant(rng.normal(size=(rows, depth)), dtype)
    upstream = rng.normal(size=(*shape[:3], kernel_size**2, heads))

    def run(implementation, cast):
        q, k, r = (tf.cast(v, cast) for v in (queries, keys, relative))
        with tf.GradientTape() as tape:
            tape.watch([q, k, r])
            weights = neighbourhood_softmax(q, k, kernel_size, heads, r, implementation)
            loss = tf.reduce_sum(tf.cast(weights, tf.float64) * upstream)
        grads = tape.gradient(loss, [q, k, r])
        return [np.asarray(tf.cast(v, tf.float64)) for v in [weights, *grads]]

    tolerance = {"float32": 3e-6, "bfloat16": 1e-2}[dtype]
    names = ["weights", "query gradient", "key gradient", "embedding gradient"]
    for name, actual, expected in zip(
        names, run("native", dtype), run("slices", tf.float64), strict=True
    ):
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(actual, expected, atol=tolerance * scale, err_msg=name)


@pytest.mark.skipif(len(IMPLEMENTATIONS) < 2, reason="the native kernel is not available")
@pytest.mark.parametrize("rows", [9, 3], ids=["full embedding", "factored embedding"])
def test_the_native_softmax_is_the_same_on_every_run(rows):
    # The embedding's gradient is summed in shares fixed by the shape, not
    # by the threads: bitwise the same result each time.
    rng = np.random.default_rng(10)
    queries = tf.constant(rng.normal(size=(64, 8, 8, 16)), tf.float32)
    keys = tf.constant(rng.normal(size=(64, 8, 8, 16)), tf.float32)
    relative = tf.constant(rng.normal(size=(rows, 8)), tf.float32)

    def gradient():
        with tf.GradientTape() as tape:
            tape.watch(relative)
            weights = neighbourhood_softmax(queries, keys, 3, 2, relative, "native")
            loss = tf.reduce_sum(weights * tf.range(9, dtype=tf.float32)[:, None])
        return tape.gradient(loss, relative).numpy()

    first = gradient()
    for _ in range(3):
        np.testing.assert_array_equal(gradient(), first)


def test_a_factored_embedding_gives_each_tap_its_row_and_column_halves():
    factored = tf.constant(np.arange(3 * 5, dtype=np.float32).reshape(3, 5))
    full = full_embedding(factored, 3).numpy()
    assert full.shape == (9, 5)
    for u in range(3):
        for v in range(3):
            np.testing.assert_array_equal(full[u * 3 + v, :2], factored.numpy()[u, :2])
            np.testing.assert_array_equal(full[u * 3 + v, 2:], factored.numpy()[v, 2:])
    np.testing.assert_array_equal(full_embedding(tf.constant(full), 3).numpy(), full)
    assert full_embedding(None, 3) is None


def test_weights_sum_to_one_and_skip_outside_positions():
    layer = LocalSelfAttention(kernel_size=5, heads=2)
    weights = layer.attention_weights(np.random.default_rng(5).normal(size=(1, 6, 6, 4))).numpy()
    np.testing.assert_allclose(weights.sum(axis=3), 1.0, rtol=1e-5)
    # The corner's neighbourhood: rows and columns -2 and -1 lie outside.
    corner = weights[0, 0, 0].reshape(5, 5, 2)
    assert np.all(corner[:2] == 0) and np.all(corner[:, :2] == 0)
    assert np.all(corner[2:, 2:] > 0)


def test_any_spatial_size_works_in_one_model():
    model = keras.Sequential([keras.Input((None, None, 8)), LocalSelfAttention(3, heads=2)])
    for size in [(1, 3), (5, 11), (16, 16)]:
        assert model(np.zeros((1, *size, 8), "float32")).shape == (1, *size, 8)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"kernel_size": 4}, "must be odd"),
        ({"kernel_size": 3, "heads": 0}, "heads must be a positive integer"),
        ({"kernel_size": 3, "implementation": "cuda"}, "implementation must be one of"),
    ],
)
def test_bad_arguments_are_refused(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        LocalSelfAttention(**kwargs)


def test_heads_must_leave_two_channels_each():
    with pytest.raises(ValueError, match="at least 2 per head"):
        LocalSelfAttention(3, heads=4).build((None, 8, 8, 4))


def test_a_mixed_precision_training_step_learns():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = keras.Sequential(
            [
                keras.Input((8, 8, 8)),
                LocalSelfAttention(3, heads=2, stride=2),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(2, dtype="float32"),
            ]
        )
        layer = model.layers[0]
        assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        rng = np.random.default_rng(6)
        x, y = rng.normal(size=(16, 8, 8, 8)).astype("float32"), rng.integers(0, 2, 16)
        before = [w.numpy().copy() for w in layer.weights]
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        assert all(np.isfinite(history.history["loss"]))
        assert all(
            not np.array_equal(a, w.numpy()) for a, w in zip(before, layer.weights, strict=True)
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_saved_model_reloads_in_a_fresh_process(tmp_path):
    model = keras.Sequential([keras.Input((6, 6, 4)), LocalSelfAttention(3, heads=2, stride=2)])
    x = np.random.default_rng(7).normal(size=(2, 6, 6, 4)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model(x).numpy())
    model.save(tmp_path / "model.keras")
    script = (
        "import numpy as np, keras, involution_bench\n"
        f"model = keras.saving.load_model({str(tmp_path / 'model.keras')!r}, safe_mode=True)\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"np.testing.assert_allclose(model(x).numpy(), np.load({str(tmp_path / 'y.npy')!r}),"
        " rtol=1e-6, atol=1e-6)\n"
        "print(type(model.layers[0]).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "LocalSelfAttention"


def test_macs_and_maps_cover_attention():
    from involution_bench.models.macs import layer_costs
    from involution_bench.models.maps import kernel_maps

    inputs = keras.Input((9, 11, 4))
    layer = LocalSelfAttention(3, heads=2, stride=2)
    model = keras.Model(inputs, keras.layers.ReLU()(layer(inputs)))
    (cost, _) = layer_costs(model)
    # Per input position: q, k, v projections 3*C*C, then 3*K*K*C for the content
    # logits, the position logits and the aggregation.
    assert cost.macs == 9 * 11 * (3 * 4 * 4 + 3 * 9 * 4)
    images = np.random.default_rng(8).normal(size=(2, 9, 11, 4)).astype("float32")
    ((title, values),) = kernel_maps(model, images)
    assert "centre weight" in title
    centre = layer.attention_weights(images).numpy()[:, :, :, 4, :].mean(axis=-1)
    np.testing.assert_allclose(values, centre, rtol=1e-6)
    assert values.shape == (2, 9, 11) and np.all((values > 0) & (values <= 1))
