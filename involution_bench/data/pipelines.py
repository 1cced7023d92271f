"""The tf.data pipelines of a run: a seeded epoch order, augmentation, scaling.

Images stay uint8 in memory (150 MB for CIFAR's training set) and are scaled
to [0, 1] float32 inside the pipeline, batch by batch; the article's float64
copies cost over a gigabyte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from involution_bench.data.base import ImageData

# Inference keeps no activations for a backward pass, so it takes larger batches
# than training. At 1,024 CIFAR images a batch, validation took 40-50% less
# time than at the training batch (`invbench bench epoch`, docs/benchmarks.md),
# with the same logits bit for bit. Larger images get proportionally fewer a
# batch, so that memory stays bounded.
EVALUATION_PIXELS = 1024 * 32 * 32
PREDICTION_BATCH = 256  # the fewest a prediction batch holds, whatever the image size


def evaluation_batch_size(image_shape, at_least: int = PREDICTION_BATCH) -> int:
    """Images a batch for validation, testing and prediction: 1,024 at 32x32."""
    height, width = int(image_shape[0]), int(image_shape[1])
    return max(at_least, EVALUATION_PIXELS // (height * width))


@dataclass(frozen=True)
class Pipelines:
    """The tf.data inputs of a run: `train` streams epoch after epoch."""

    train: Any
    validation: Any
    steps_per_epoch: int


def epoch_order(size: int, seed: int, epoch: int):
    """The training images' order in `epoch`: a permutation fixed by (seed, epoch)
    alone, so a resumed run sees exactly the order it would have seen."""
    import tensorflow as tf

    return tf.argsort(tf.random.stateless_uniform([size], seed=[seed, epoch]))


def augment_batch(images, seed):
    """Random crop after 4-pixel zero padding and random horizontal flip, per image.

    Stateless: the same `seed` (a pair of integers) gives the same batch. Both
    are two gathers of whole rows and columns (the flip reverses the column
    indices), on the images as they come (uint8 in training: a quarter of the
    bytes of float32), so the pipeline keeps pace with the step on two cores.
    """
    import tensorflow as tf

    seed = tf.convert_to_tensor(seed, tf.int64)
    count, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [4, 4], [4, 4], [0, 0]])
    offsets = tf.random.stateless_uniform([count, 2], seed=seed, maxval=9, dtype=tf.int32)
    flip = tf.random.stateless_uniform([count], seed=seed + tf.constant([0, 1], tf.int64)) < 0.5
    rows = offsets[:, :1] + tf.range(height)[tf.newaxis]
    ahead = tf.range(width)[tf.newaxis]
    cols = offsets[:, 1:] + tf.where(flip[:, tf.newaxis], width - 1 - ahead, ahead)
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def make_datasets(
    data: ImageData, batch_size: int, seed: int, first_epoch: int = 0, augment: bool = False
) -> Pipelines:
    """Train and validation pipelines; train starts at `first_epoch` and never ends.

    Validation reads `data.x_val` (`with_validation` has set it: a held-out split,
    or the test set under the article's protocol), in batches of
    `evaluation_batch_size` (the same metrics: they are means over images).

    Fit it with `steps_per_epoch` (Keras then keeps one iterator across epochs).
    Batches never straddle two epochs; images are scaled batch by batch, and
    augmented (train only) with seeds from (seed, epoch, batch).
    """
    import tensorflow as tf

    def scale(images, labels):
        return tf.cast(images, tf.float32) / 255.0, labels

    size = len(data.x_train)
    images, labels = tf.constant(data.x_train), tf.constant(data.y_train)

    def epoch_batches(epoch):
        order = epoch_order(size, seed, tf.cast(epoch, tf.int32))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        steps = tf.data.Dataset.range(2**31 - 1)
        return tf.data.Dataset.zip(batches, steps).map(lambda order, step: (order, epoch, step))

    def load(order, epoch, step):
        batch_images, batch_labels = tf.gather(images, order), tf.gather(labels, order)
        if augment:  # on uint8, then scaled: the same images as scaling first
            batch_seed = tf.stack([tf.cast(seed, tf.int64) * 100_003 + epoch, step])
            batch_images = augment_batch(batch_images, batch_seed)
        return scale(batch_images, batch_labels)

    autotune = tf.data.AUTOTUNE
    train = (
        tf.data.Dataset.range(first_epoch, 2**31 - 1)
        .flat_map(epoch_batches)
        .map(load, num_parallel_calls=autotune)
        .prefetch(autotune)
    )
    validation_batch = evaluation_batch_size(data.x_val.shape[1:], at_least=batch_size)
    validation = evaluation_batches(data.x_val, data.y_val, validation_batch)
    return Pipelines(train, validation, -(-size // batch_size))


def evaluation_batches(images, labels, batch_size: int):
    """Fixed images in order, scaled batch by batch: a validation or test pass."""
    import tensorflow as tf

    def scale(images, labels):
        return tf.cast(images, tf.float32) / 255.0, labels

    autotune = tf.data.AUTOTUNE
    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .batch(batch_size)
        .map(scale, num_parallel_calls=autotune)
        .prefetch(autotune)
    )
