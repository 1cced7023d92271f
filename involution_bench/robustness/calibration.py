"""Calibration: expected calibration error, negative log-likelihood, reliability bins.

Guo et al. 2017 ("On Calibration of Modern Neural Networks"): predictions
fall into 15 equal-width bins of confidence (the top softmax probability),
bin m holding confidences in ((m - 1)/15, m/15]; the ECE is
Σ_m |B_m|/n · |accuracy(B_m) - confidence(B_m)|. The negative log-likelihood
is the mean of -log p(true class) under the softmax of the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 15


@dataclass
class Reliability:
    """Per-bin totals, which add up over sets: counts, confidence sums, correct counts."""

    count: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray

    @classmethod
    def empty(cls, bins: int = BINS) -> Reliability:
        return cls(np.zeros(bins), np.zeros(bins), np.zeros(bins))

    def add(self, other: Reliability) -> Reliability:
        return Reliability(
            self.count + other.count,
            self.confidence + other.confidence,
            self.correct + other.correct,
        )

    @property
    def ece(self) -> float:
        total = self.count.sum()
        if not total:
            return float("nan")
        return float(np.abs(self.correct - self.confidence).sum() / total)

    def to_dict(self) -> dict[str, list]:
        """Per bin: its upper edge, the images in it, their mean confidence and accuracy."""
        with np.errstate(invalid="ignore", divide="ignore"):
            confidence = np.where(self.count > 0, self.confidence / self.count, np.nan)
            accuracy = np.where(self.count > 0, self.correct / self.count, np.nan)
        edges = np.linspace(0, 1, len(self.count) + 1)[1:]
        return {
            "upper_edges": edges.round(6).tolist(),
            "count": self.count.astype(int).tolist(),
            "confidence": [None if np.isnan(v) else float(v) for v in confidence],
            "accuracy": [None if np.isnan(v) else float(v) for v in accuracy],
        }


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> Reliability:
    confidence = probabilities.max(axis=-1)
    correct = (probabilities.argmax(axis=-1) == labels).astype(np.float64)
    # bin m (0-based) holds (m/bins, (m+1)/bins]; a confidence of exactly 0 cannot occur
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    return Reliability(
        np.bincount(index, minlength=bins).astype(np.float64),
        np.bincount(index, weights=confidence, minlength=bins),
        np.bincount(index, weights=correct, minlength=bins),
    )


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS
) -> float:
    return reliability(probabilities, labels, bins).ece


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray) -> float:
    logits = logits.astype(np.float64)
    top = logits.max(axis=-1, keepdims=True)
    log_total = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0]
    return float(np.mean(log_total - logits[np.arange(len(labels)), labels]))
