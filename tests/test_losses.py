"""Label smoothing against a plain NumPy cross-entropy."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from involution_bench.train.losses import SmoothedSparseCrossentropy, training_loss


def reference_loss(labels, logits, smoothing):
    classes = logits.shape[-1]
    targets = np.full(logits.shape, smoothing / classes)
    targets[np.arange(len(labels)), labels] += 1.0 - smoothing
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(np.mean(-(targets * log_probs).sum(axis=-1)))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_smoothed_loss_matches_the_reference(smoothing):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=16).astype("int32")
    logits = rng.normal(scale=3.0, size=(16, 10)).astype("float32")
    loss = SmoothedSparseCrossentropy(smoothing)(labels, logits)
    assert float(loss) == pytest.approx(reference_loss(labels, logits, smoothing), rel=1e-5)


def test_smoothing_raises_the_loss_of_a_confident_correct_prediction():
    labels = np.array([3], dtype="int32")
    logits = np.full((1, 10), -10.0, dtype="float32")
    logits[0, 3] = 10.0
    plain = float(training_loss(0.0)(labels, logits))
    smoothed = float(training_loss(0.1)(labels, logits))
    assert plain < 1e-6 < 1.0 < smoothed  # confident and right costs ~0, unless smoothed


def test_no_smoothing_keeps_keras_own_loss_and_the_loss_round_trips():
    assert isinstance(training_loss(0.0), keras.losses.SparseCategoricalCrossentropy)
    loss = training_loss(0.2)
    again = SmoothedSparseCrossentropy.from_config(loss.get_config())
    assert again.label_smoothing == pytest.approx(0.2)
    with pytest.raises(ValueError, match="label_smoothing"):
        SmoothedSparseCrossentropy(1.0)
