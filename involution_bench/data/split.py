"""The validation split: the images a run chooses on, never the test set's.

`data.validation` says where they come from:

- a count N: N training images held out, drawn per class in proportion
  (stratified; each class within one image of its share), by a generator of
  their own seeded with `data.split_seed`, so every model and every seed of a
  study sees the same split, and a resumed run the split it started with;
- unset: the dataset's own validation images where it has them (a folder
  dataset's `val/`), else a tenth of the training images (CIFAR: 5,000 of
  50,000, the common 45,000 / 5,000 practice);
- `test`: the test set, as the source article validates. What such a run
  chooses is chosen on the data it is judged by, and says so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from involution_bench.data.base import ImageData

DEFAULT_FRACTION = 0.1


class SplitProblem(ValueError):
    """A validation size the training set cannot give."""


def stratified_holdout(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of `count` images, each class's share by the largest remainder, drawn
    without replacement inside each class; sorted."""
    classes, sizes = np.unique(labels, return_counts=True)
    exact = sizes * count / len(labels)
    shares = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - shares), kind="stable")[: count - shares.sum()]:
        shares[index] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == label), share, replace=False)
        for label, share in zip(classes, shares, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def with_validation(data: ImageData, validation: int | str | None, split_seed: int) -> ImageData:
    """`data` with its validation images set, as `data.validation` says (see above)."""
    if validation == "test":
        return replace(data, x_val=data.x_test, y_val=data.y_test, validation="test")
    if validation is None and data.x_val is not None:
        return replace(data, validation=data.validation or "val/")
    size = len(data.y_train)
    count = validation if validation is not None else max(1, round(DEFAULT_FRACTION * size))
    if count >= size:
        raise SplitProblem(f"{count} is not fewer than the {size} training images")
    held = stratified_holdout(np.asarray(data.y_train), count, split_seed)
    keep = np.setdiff1d(np.arange(size), held, assume_unique=True)
    return replace(
        data,
        x_train=data.x_train[keep],
        y_train=data.y_train[keep],
        x_val=data.x_train[held],
        y_val=data.y_train[held],
        validation="split",
    )
