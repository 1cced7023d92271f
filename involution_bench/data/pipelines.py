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


AUGMENT_PADDING = 4  # pixels of zeros around each image before the random crop


def augmentation_draws(seed, count):
    """Each image's crop offsets `(count, 2)` in the padded image, and whether it
    flips `(count,)`: stateless, fixed by `seed` (a pair of integers)."""
    import tensorflow as tf

    seed = tf.convert_to_tensor(seed, tf.int64)
    offsets = tf.random.stateless_uniform(
        [count, 2], seed=seed, maxval=2 * AUGMENT_PADDING + 1, dtype=tf.int32
    )
    flip = tf.random.stateless_uniform([count], seed=seed + tf.constant([0, 1], tf.int64)) < 0.5
    return offsets, flip


def augment_batch(images, seed):
    """Random crop after 4-pixel zero padding and random horizontal flip, per image.

    Stateless: the same `seed` (a pair of integers) gives the same batch. Both
    are two gathers of whole rows and columns (the flip reverses the column
    indices), on the images as they come (uint8 in training: a quarter of the
    bytes of float32). This is the plain TensorFlow form; training runs
    `augment_and_scale`.
    """
    import tensorflow as tf

    count, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    pad = AUGMENT_PADDING
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets, flip = augmentation_draws(seed, count)
    rows = offsets[:, :1] + tf.range(height)[tf.newaxis]
    ahead = tf.range(width)[tf.newaxis]
    cols = offsets[:, 1:] + tf.where(flip[:, tf.newaxis], width - 1 - ahead, ahead)
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def scale_images(images):
    """uint8 images as float32 in [0, 1]."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 255.0


def augment_and_scale(images, seed, native: bool = True):
    """`scale_images(augment_batch(images, seed))`, bit for bit, in one native pass
    over the batch where the op library builds (`ops.augment`): on 2 cores the
    TensorFlow form's gathers took 4-5% of a ResNet's epoch from its steps."""
    import tensorflow as tf

    if native and images.dtype == tf.uint8 and images.shape.rank == 4:
        from involution_bench.ops.augment import crop_flip_scale

        offsets, flip = augmentation_draws(seed, tf.shape(images)[0])
        augmented = crop_flip_scale(images, offsets, flip, AUGMENT_PADDING)
        if augmented is not None:
            return augmented
    return scale_images(augment_batch(images, seed))


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
            return augment_and_scale(batch_images, batch_seed), batch_labels
        return scale_images(batch_images), batch_labels

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

    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    scaled = batches.map(
        lambda images, labels: (scale_images(images), labels), num_parallel_calls=usable_cores()
    )
    return untuned(scaled.prefetch(2))


def image_batches(images, batch_size: int):
    """Images already scaled, in order, in batches: the input of a prediction pass."""
    import tensorflow as tf

    return untuned(tf.data.Dataset.from_tensor_slices(images).batch(batch_size).prefetch(2))


def untuned(dataset):
    """`dataset` without tf.data's autotuning, for passes that end.

    Freeing an iterator that autotunes waits on TensorFlow's tuning thread: 200-300 ms
    after most validation passes, while `fit` runs, on the 2-core EPYC (up to 2% of an epoch;
    docs/benchmarks.md, "The stall after validation"). A pass over fixed batches has
    nothing to tune, so its parallelism is set instead.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def usable_cores() -> int:
    """The cores this process may run on: a SLURM or taskset mask, not the machine's."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
