"""Training augmentation's crop, flip and scaling as one native op, where it builds.

`crop_flip_scale` computes, bit for bit, a crop of the zero-padded images at
the given offsets, a horizontal flip where asked, and the uint8-to-[0, 1]
scaling (`float(x) / 255`), in one pass over the batch (`native/augment_kernels.h`).
TensorFlow's gathers copy 3-byte pixels one by one: on a 2-core CPU that made
augmentation most of the input pipeline's work, taken from the training step.
"""

from __future__ import annotations

import tensorflow as tf

from involution_bench.ops.native import native_ops


def crop_flip_scale(images, offsets, flip, padding: int):
    """`(B, H, W, C)` uint8 images cropped from their `padding`-padded selves at
    `offsets` `(B, 2)` (row, column, in [0, 2 * padding]), flipped where `flip`
    `(B,)`, as float32 in [0, 1]; None where the native library is not available."""
    library = native_ops()
    if library is None:
        return None
    return library.invbench_crop_flip_scale(
        tf.convert_to_tensor(images, tf.uint8),
        tf.convert_to_tensor(offsets, tf.int32),
        tf.convert_to_tensor(flip, tf.bool),
        padding=padding,
    )
