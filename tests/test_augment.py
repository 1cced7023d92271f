"""Training augmentation's native op: bit for bit the TensorFlow form, and checked inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_cifar10

from involution_bench.data import pipelines
from involution_bench.data.split import with_validation
from involution_bench.ops import augment
from involution_bench.ops.native import native_ops

pytestmark = pytest.mark.skipif(
    native_ops() is None, reason="the native kernel is unavailable (see test_native)"
)


def plain_crop_flip_scale(images, offsets, flips, pad):
    """Per image in numpy: pad with zeros, crop at the offsets, flip, scale."""
    height, width = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    crops = [
        padded[i, r : r + height, c : c + width][:, :: -1 if flip else 1]
        for i, ((r, c), flip) in enumerate(zip(offsets, flips, strict=True))
    ]
    return np.stack(crops).astype(np.float32) / np.float32(255)


@pytest.mark.parametrize("shape", [(128, 32, 32, 3), (5, 7, 9, 1), (3, 2, 3, 4), (2, 40, 24, 3)])
def test_the_native_pass_is_the_tensorflow_form_bit_for_bit(shape):
    import tensorflow as tf

    rng = np.random.default_rng(sum(shape))
    images = tf.constant(rng.integers(0, 256, shape, dtype=np.uint8))
    for step in range(8):
        seed = tf.constant([17, step], tf.int64)
        native = pipelines.augment_and_scale(images, seed).numpy()
        tensorflow_form = pipelines.augment_and_scale(images, seed, native=False).numpy()
        assert native.dtype == np.float32 and native.shape == shape
        np.testing.assert_array_equal(native, tensorflow_form)


def test_every_offset_and_flip_against_plain_numpy():
    """All 9 x 9 offsets with and without the flip, padding wider than the image
    (rows or columns wholly zero) included."""
    import tensorflow as tf

    images = np.random.default_rng(5).integers(0, 256, (162, 6, 5, 3), dtype=np.uint8)
    offsets = np.array([(r, c) for r in range(9) for c in range(9)] * 2, np.int32)
    flips = np.repeat([False, True], 81)
    out = augment.crop_flip_scale(images, offsets, flips, 4).numpy()
    np.testing.assert_array_equal(out, plain_crop_flip_scale(images, offsets, flips, 4))
    # Beyond a 6x5 image, zeros: the first 4 rows at offset (0, 0); at (8, 8), all
    # but the top-left 2x1 (source rows 4-5, column 4).
    assert np.all(out[0, :4] == 0) and np.any(out[0, 4:] > 0)
    assert np.all(out[80, 2:] == 0) and np.all(out[80, :, 1:] == 0) and np.any(out[80] > 0)
    unpadded = augment.crop_flip_scale(images, np.zeros((162, 2), np.int32), flips, 0).numpy()
    np.testing.assert_array_equal(
        unpadded, plain_crop_flip_scale(images, np.zeros((162, 2), int), flips, 0)
    )
    assert tf.reduce_max(unpadded) <= 1.0


def test_offsets_outside_the_padding_and_wrong_shapes_are_refused():
    import tensorflow as tf

    images = np.zeros((2, 8, 8, 3), np.uint8)
    flips = np.array([False, True])
    for offsets, said in [
        ([[0, 0], [0, 9]], r"offsets must lie in \[0, 8\]"),
        ([[-1, 0], [0, 0]], r"offsets must lie in \[0, 8\]"),
        ([[0, 0]], r"offsets must be \(2, 2\)"),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=said):
            augment.crop_flip_scale(images, np.array(offsets, np.int32), flips, 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"flip must be \(2\)"):
        augment.crop_flip_scale(images, np.zeros((2, 2), np.int32), flips[:1], 4)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="images must be"):
        single = np.zeros((8, 8, 3), np.uint8)
        augment.crop_flip_scale(single, np.zeros((8, 2), np.int32), np.zeros(8, bool), 4)


def test_the_training_pipeline_runs_the_native_pass_and_gives_the_same_batches(
    cifar_dir, monkeypatch
):
    data = with_validation(load_cifar10(cifar_dir), "test", split_seed=0)
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return native_pass(*args, **kwargs)

    native_pass = augment.crop_flip_scale
    monkeypatch.setattr(augment, "crop_flip_scale", counted)
    batches = make_batches(data)
    assert calls  # traced once into the pipeline's map
    monkeypatch.setattr(
        pipelines,
        "augment_and_scale",
        lambda images, seed, native=True, _plain=pipelines.augment_and_scale: _plain(
            images, seed, native=False
        ),
    )
    calls.clear()
    tensorflow_form = make_batches(data)
    assert not calls
    assert len(batches) == len(tensorflow_form) == 6
    for (x, y), (x_again, y_again) in zip(batches, tensorflow_form, strict=True):
        np.testing.assert_array_equal(x, x_again)
        np.testing.assert_array_equal(y, y_again)


def make_batches(data):
    """Two epochs of three augmented training batches."""
    train = pipelines.make_datasets(data, batch_size=32, seed=3, augment=True).train
    return [(x.numpy(), y.numpy()) for x, y in train.take(6)]
