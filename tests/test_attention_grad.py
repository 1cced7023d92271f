"""Local attention's fused native backward pass (`InvbenchAttentionGrad`): the
aggregation's kernel gradient with the softmax's gradient as its epilogue.

Checked against the same maths in float64 through the slices, and against
the native path it replaced (the softmax's gradient as its own op, over the
aggregation's kernel gradient read back from memory)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from involution_bench.ops.involution import involution
from involution_bench.ops.local_attention import local_attention
from involution_bench.ops.native import native_ops
from involution_bench.ops.neighbourhood import neighbourhood_softmax

pytestmark = pytest.mark.skipif(native_ops() is None, reason="the native kernel is not available")

NAMES = ["output", "query gradient", "key gradient", "value gradient", "embedding gradient"]

CASES = [
    # (B, H, W, C), K, heads
    ((2, 13, 11, 12), 3, 3),  # odd sizes, 4 channels a head
    ((2, 6, 19, 24), 7, 3),  # wider than a block of 16 columns, not a multiple of it
    ((1, 5, 3, 20), 3, 5),  # narrower than the narrowest block (4 columns)
    ((2, 7, 6, 12), 5, 6),  # 6 heads of 2 channels, a block of 8 columns
    ((2, 9, 8, 8), 7, 1),  # one head
    ((1, 4, 4, 10), 7, 2),  # the neighbourhood covers the whole image; odd head depth
]


def _arrays(shape, kernel_size, heads, factored, seed=0):
    rng = np.random.default_rng(seed)
    queries, keys, values, upstream = (rng.normal(size=shape) for _ in range(4))
    rows = kernel_size if factored else kernel_size**2
    relative = rng.normal(size=(rows, shape[-1] // heads))
    return [queries, keys, values, relative], upstream


def _separate_ops(queries, keys, values, kernel_size, heads, relative, implementation):
    """Attention as it ran before the fused gradient: weights, then the aggregation,
    each op with its own gradient."""
    weights = neighbourhood_softmax(queries, keys, kernel_size, heads, relative, implementation)
    return involution(values, weights, kernel_size, 1, heads, implementation)


def _output_and_gradients(attention, arrays, upstream, kernel_size, heads, dtype):
    tensors = [tf.constant(array, dtype) for array in arrays]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        queries, keys, values, relative = tensors
        output = attention(queries, keys, values, kernel_size, heads, relative, "native")
        loss = tf.reduce_sum(tf.cast(output, tf.float64) * upstream)
    return [np.asarray(tf.cast(v, tf.float64)) for v in [output, *tape.gradient(loss, tensors)]]


def _reference(arrays, upstream, kernel_size, heads):
    """The same attention through the slices in float64 (a factored embedding
    expanded to every tap's there, and differentiated through the expansion)."""
    tensors = [tf.constant(array, tf.float64) for array in arrays]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        queries, keys, values, relative = tensors
        output = _separate_ops(queries, keys, values, kernel_size, heads, relative, "slices")
        loss = tf.reduce_sum(output * upstream)
    return [v.numpy() for v in [output, *tape.gradient(loss, tensors)]]


@pytest.mark.parametrize(("shape", "kernel_size", "heads"), CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
@pytest.mark.parametrize("factored", [False, True], ids=["full embedding", "factored embedding"])
def test_the_fused_gradients_match_the_float64_reference(
    shape, kernel_size, heads, dtype, factored
):
    arrays, upstream = _arrays(shape, kernel_size, heads, factored)
    actual = _output_and_gradients(local_attention, arrays, upstream, kernel_size, heads, dtype)
    expected = _reference(arrays, upstream, kernel_size, heads)
    tolerance = {"float64": 1e-12, "float32": 3e-6, "bfloat16": 2e-2}[dtype]
    for name, got, want in zip(NAMES, actual, expected, strict=True):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, atol=tolerance * scale, err_msg=name)


@pytest.mark.parametrize(("shape", "kernel_size", "heads"), CASES[:4])
@pytest.mark.parametrize("factored", [False, True], ids=["full embedding", "factored embedding"])
def test_the_fused_gradients_match_the_separate_native_ops(shape, kernel_size, heads, factored):
    # Same sums in float32, only their order differs: a few ulps apart.
    arrays, upstream = _arrays(shape, kernel_size, heads, factored, seed=1)
    fused = _output_and_gradients(local_attention, arrays, upstream, kernel_size, heads, "float32")
    separate = _output_and_gradients(_separate_ops, arrays, upstream, kernel_size, heads, "float32")
    np.testing.assert_array_equal(fused[0], separate[0], err_msg="output")
    for name, got, want in zip(NAMES[1:], fused[1:], separate[1:], strict=True):
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(got, want, atol=2e-6 * scale, err_msg=name)


def test_attention_without_an_embedding_has_content_gradients_only():
    arrays, upstream = _arrays((2, 6, 5, 8), 3, 2, factored=False, seed=2)
    arrays[3] = np.zeros_like(arrays[3])  # what None means: no position term
    expected = _reference(arrays, upstream, 3, 2)
    tensors = [tf.constant(array, tf.float64) for array in arrays[:3]]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        output = local_attention(*tensors, 3, 2, None, "native")
        loss = tf.reduce_sum(output * upstream)
    actual = [output.numpy(), *(g.numpy() for g in tape.gradient(loss, tensors))]
    for name, got, want in zip(NAMES, actual, expected, strict=False):
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("factored", [False, True], ids=["full embedding", "factored embedding"])
def test_the_fused_gradients_are_the_same_on_every_run(factored):
    # The embedding's gradient is summed image by image, in image order, not
    # in the order the threads finish: bitwise the same each time.
    arrays, upstream = _arrays((64, 8, 8, 16), 3, 2, factored, seed=3)

    def gradients():
        return _output_and_gradients(local_attention, arrays, upstream, 3, 2, "float32")

    first = gradients()
    for _ in range(3):
        for name, again, was in zip(NAMES, gradients(), first, strict=True):
            np.testing.assert_array_equal(again, was, err_msg=name)


def test_the_op_refuses_queries_of_another_shape():
    library = native_ops()
    values = tf.zeros((1, 4, 4, 6))
    weights = tf.zeros((1, 4, 4, 9, 2))
    with pytest.raises(tf.errors.InvalidArgumentError, match="do not match the values"):
        library.invbench_attention_grad(
            values, values, weights, tf.zeros((1, 4, 4, 8)), tf.zeros((3, 3)),
            kernel_size=3, stride=1, groups=2,
        )  # fmt: skip
    with pytest.raises(tf.errors.InvalidArgumentError, match="relative must be"):
        library.invbench_attention_grad(
            values, values, weights, values, tf.zeros((4, 3)), kernel_size=3, stride=1, groups=2
        )
