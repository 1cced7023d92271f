"""Timing helpers every benchmark shares: medians after warm-up, and waiting for results.

Every figure is a median over repeats after warm-up, measured in the same
process as its baseline, so ratios hold even on a noisy machine; where
several things are compared, in turns (`interleaved_medians`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Mapping

import numpy as np
import tensorflow as tf

FLOAT_BYTES = 4


def median_seconds(run: Callable[[], object], repeats: int, warmup: int) -> float:
    return interleaved_medians({None: run}, repeats, warmup)[None]


def interleaved_medians(
    runs: Mapping[Hashable, Callable[[], object]], repeats: int, warmup: int
) -> dict[Hashable, float]:
    """The median seconds of each run, timed in turns: one call of each per round.

    A shared machine's speed drifts over seconds to minutes. Runs timed one
    after the other each meet a different machine, and their ratio moves
    with it (RedNet against its ResNet read 1.14, then 1.24, on one EPYC within
    minutes); in turns, every round meets the same machine.
    """
    for _ in range(warmup):
        for run in runs.values():
            wait_for_result(run())
    times: dict[Hashable, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            start = time.perf_counter()
            wait_for_result(run())
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes per second of a large copy (read + write), the machine's streaming speed."""
    source = np.ones(megabytes * 2**20 // FLOAT_BYTES, dtype=np.float32)
    target = np.empty_like(source)
    seconds = median_seconds(lambda: np.copyto(target, source), repeats, warmup=1)
    return 2 * source.nbytes / seconds


def wait_for_result(result: object) -> None:
    """Block until a result is computed (eager ops can return before they finish).

    Reads back one value of each tensor, not all of it: copying a whole
    result into NumPy is work no training step does, and at RedNet's shape it
    took 16 ms (0.4 of the native kernel's forward and backward) on a 2-core Xeon.
    """
    for tensor in tf.nest.flatten(result):
        if isinstance(tensor, tf.Tensor):
            tf.reshape(tensor, [-1])[:1].numpy()
