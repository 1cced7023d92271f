"""How long the CIFAR-10-C-style sets take to generate, corruption by corruption.

Generation is NumPy, SciPy and Pillow on the CPU, and costs the same for any
model: the suite caches it (see `robustness.cache`). Timed on random
CIFAR-sized images (the cost does not depend on what they show), uncached.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from involution_bench.robustness.corruptions import SEVERITIES, available, corrupt


@dataclass(frozen=True)
class GenerationTiming:
    corruption: str
    images: int
    seconds: tuple[float, ...]  # per severity, 1-5

    @property
    def total(self) -> float:
        return sum(self.seconds)

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def bench_generation(images: int = 10_000, shape=(32, 32, 3)) -> list[GenerationTiming]:
    clean = np.random.default_rng(0).integers(0, 256, size=(images, *shape), dtype=np.uint8)
    timings = []
    for corruption in available(None):
        seconds = []
        for severity in SEVERITIES:
            start = time.perf_counter()
            corrupt(clean, corruption.name, severity)
            seconds.append(time.perf_counter() - start)
        timings.append(GenerationTiming(corruption.name, images, tuple(seconds)))
    return timings
