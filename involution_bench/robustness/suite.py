"""The robustness suite on one model: shifts, corruptions, calibration.

`robustness_report` takes a `predict` function (float32 images in [0, 1] to
logits) and the clean test set, and returns what `robustness.json` holds.
Every perturbation comes from generators seeded by the suite's seed and the
measurement's name, so every model sees the same perturbed images.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from involution_bench.analysis.stats import mean_interval
from involution_bench.robustness import shifts
from involution_bench.robustness.cache import CorruptionCache
from involution_bench.robustness.calibration import (
    Reliability,
    negative_log_likelihood,
    reliability,
    softmax,
)
from involution_bench.robustness.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    available,
    corrupt,
)
from involution_bench.robustness.corruptions.weather import FROST_FILES, load_frost_textures

FORMAT = 1
Predict = Callable[[np.ndarray], np.ndarray]  # float32 images in [0, 1] -> logits


@dataclass(frozen=True)
class SuiteOptions:
    seed: int = 0
    consistency_draws: int = 5  # pairs of circular shifts per image
    max_shift: int = 3  # pixels, per axis: consistency and worst of k
    translation_pixels: int = 8  # the translation curve runs 0..this
    worst_of: int = 10  # k
    max_rotation: float = 0.0  # degrees; 30 adds Engstrom et al.'s rotations to worst of k
    corruptions: tuple[str, ...] | None = None  # None: every one that can be generated
    frost_dir: Path | None = None  # the reference's frost photographs, for frost
    cache_root: Path | None = None  # None: $INVBENCH_CACHE_DIR/corruptions
    cache: bool = True
    skipped: tuple[str, ...] = field(default=())  # measurements left out: "corruptions"


def _rng(seed: int, what: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(what.encode())])


class _Timer:
    def __init__(self, predict: Predict) -> None:
        self._predict = predict
        self.inference = 0.0
        self.images = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        logits = np.asarray(self._predict(images))
        self.inference += time.perf_counter() - start
        self.images += len(images)
        return logits


def _scores(logits: np.ndarray, labels: np.ndarray) -> tuple[dict[str, float], Reliability]:
    bins = reliability(softmax(logits.astype(np.float64)), labels)
    return {
        "accuracy": float(np.mean(logits.argmax(axis=-1) == labels)),
        "nll": negative_log_likelihood(logits, labels),
        "ece": bins.ece,
    }, bins


def consistency(predict: Predict, images, options: SuiteOptions) -> dict[str, Any]:
    rng = _rng(options.seed, "consistency")
    agree = []
    for _ in range(options.consistency_draws):
        first = shifts.random_offsets(rng, len(images), options.max_shift)
        second = shifts.random_offsets(rng, len(images), options.max_shift)
        a = predict(shifts.circular_shift(images, first)).argmax(axis=-1)
        b = predict(shifts.circular_shift(images, second)).argmax(axis=-1)
        agree.append(a == b)
    per_image = np.mean(agree, axis=0)
    interval = mean_interval(per_image.tolist())
    return {
        "value": float(per_image.mean()),
        "ci_low": interval.low,
        "ci_high": interval.high,
        "draws": options.consistency_draws,
        "max_shift": options.max_shift,
    }


def translation(predict: Predict, images, labels, options: SuiteOptions) -> dict[str, Any]:
    rng = _rng(options.seed, "translation")
    pixels = list(range(options.translation_pixels + 1))
    accuracy = []
    for distance in pixels:
        offsets = shifts.translation_offsets(rng, len(images), distance)
        predicted = predict(shifts.translate(images, offsets)).argmax(axis=-1)
        accuracy.append(float(np.mean(predicted == labels)))
    return {"pixels": pixels, "accuracy": accuracy, "fill": "zeros", "directions": 4}


def worst_of_k(predict: Predict, images, labels, options: SuiteOptions) -> dict[str, Any]:
    rng = _rng(options.seed, "worst_of_k")
    correct = np.ones(len(images), dtype=bool)
    for _ in range(options.worst_of):
        offsets = shifts.random_offsets(rng, len(images), options.max_shift)
        if options.max_rotation:
            angles = rng.uniform(-options.max_rotation, options.max_rotation, len(images))
            moved = shifts.rotate_translate(images, angles, offsets)
        else:
            moved = shifts.translate(images, offsets)
        correct &= predict(moved).argmax(axis=-1) == labels
    return {
        "k": options.worst_of,
        "accuracy": float(correct.mean()),
        "max_shift": options.max_shift,
        "max_rotation": options.max_rotation,
    }


def _frost(options: SuiteOptions) -> tuple[list | None, str]:
    if options.frost_dir is None:
        return None, ""
    digest = hashlib.sha256()
    for name in FROST_FILES:
        digest.update((options.frost_dir / name).read_bytes())
    return load_frost_textures(options.frost_dir), "-frost" + digest.hexdigest()[:8]


def corruption_scores(
    predict: Predict, images, labels, options: SuiteOptions
) -> tuple[dict[str, Any], float]:
    """Accuracy, NLL and ECE of every corruption at every severity; and the seconds
    spent generating (or loading) the sets."""
    wanted = options.corruptions
    chosen = [c for c in available(options.frost_dir) if wanted is None or c.name in wanted]
    textures, extra = _frost(options)
    cache = CorruptionCache(images, options.cache_root, extra) if options.cache else None
    generation = 0.0
    results: dict[str, dict[str, list[float]]] = {}
    pooled = Reliability.empty()
    for corruption in chosen:
        entry = {"accuracy": [], "nll": [], "ece": []}
        for severity in SEVERITIES:
            start = time.perf_counter()

            def generate(name=corruption.name, severity=severity):
                return corrupt(images, name, severity, options.seed, textures)

            if cache:
                corrupted = cache.get(corruption.name, severity, options.seed, generate)
            else:
                corrupted = generate()
            generation += time.perf_counter() - start
            scores, bins = _scores(predict(shifts.scaled(corrupted)), labels)
            pooled = pooled.add(bins)
            for key, value in scores.items():
                entry[key].append(value)
        results[corruption.name] = entry
    if not results:
        return {}, generation
    accuracy = np.array([entry["accuracy"] for entry in results.values()])
    left_out = [c.name for c in CORRUPTIONS if c.name not in results]
    return {
        "names": list(results),
        "left_out": left_out,
        "severities": list(SEVERITIES),
        "by_corruption": results,
        "mean_accuracy": float(accuracy.mean()),
        "mean_accuracy_by_severity": accuracy.mean(axis=0).tolist(),
        "mean_nll": float(np.mean([entry["nll"] for entry in results.values()])),
        "mean_ece": float(np.mean([entry["ece"] for entry in results.values()])),
        "reliability": pooled.to_dict(),
        "cache_hits": cache.hits if cache else 0,
    }, generation


def robustness_report(
    predict: Predict, images: np.ndarray, labels: np.ndarray, options: SuiteOptions
) -> dict[str, Any]:
    """Every measurement of the suite on one model, as `robustness.json` holds it."""
    labels = np.asarray(labels)
    timed = _Timer(predict)
    started = time.perf_counter()
    clean, bins = _scores(timed(shifts.scaled(images)), labels)
    report: dict[str, Any] = {
        "format": FORMAT,
        "images": len(labels),
        "options": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in asdict(options).items()
            if key != "cache_root"
        },
        "clean": {**clean, "reliability": bins.to_dict()},
        "consistency": consistency(timed, images, options),
        "translation": translation(timed, images, labels, options),
        "worst_of_k": worst_of_k(timed, images, labels, options),
    }
    generation = 0.0
    if "corruptions" not in options.skipped:
        report["corruptions"], generation = corruption_scores(timed, images, labels, options)
    report["seconds"] = {
        "total": time.perf_counter() - started,
        "generation": generation,
        "inference": timed.inference,
        "images_inferred": timed.images,
    }
    return report
