"""The training loss: cross-entropy from logits on integer labels, with
optional label smoothing.

Keras 3's sparse cross-entropy has no `label_smoothing`, and the dense one
wants one-hot labels; one-hot labels in the pipeline would also change the
`accuracy` metric and every saved batch. So the smoothing happens here,
inside the loss, and the pipeline keeps integer labels.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="involution_bench")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of logits against integer labels smoothed towards uniform.

    With smoothing e and C classes the target is (1 - e) * one_hot + e / C,
    as in Szegedy et al. (2016) and Keras' `CategoricalCrossentropy`.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")  # float16 logits would lose the small targets
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        one_hot = ops.one_hot(labels, ops.shape(logits)[-1], dtype=logits.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, logits, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def training_loss(label_smoothing: float) -> keras.losses.Loss:
    """Keras' own sparse loss unless smoothing is asked for: unchanged runs stay bit-identical."""
    if label_smoothing:
        return SmoothedSparseCrossentropy(label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
