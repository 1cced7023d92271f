"""Datasets: a registry of image datasets, one file each, and the pipelines that feed them.

A module of this package that declares `DATASET` (a `Dataset`) is
registered under its name: `cifar10` (the default), `cifar100` and
`folder`. A new dataset is one new file. The config's `data.name` picks one;
its input shape, classes and class names come from it. Loading never happens
at import: this package, like `config`, imports no TensorFlow.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from pathlib import Path

from involution_bench.data.base import Dataset, ImageData
from involution_bench.errors import DataError

DATA_DIR_ENV = "INVBENCH_DATA_DIR"
_NOT_DATASETS = {"base", "cifar_files", "pipelines", "split"}  # the package's machinery


def _discover() -> dict[str, Dataset]:
    found: dict[str, Dataset] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if module.name in _NOT_DATASETS or module.name.startswith("_"):
            continue
        dataset = importlib.import_module(f"{__name__}.{module.name}").DATASET
        found[dataset.name] = dataset
    return found


DATASETS: dict[str, Dataset] = _discover()


def resolve_data_dir(configured: str | None, dataset: str = "cifar10") -> Path | None:
    """The folder to read: the config's `data.dir`; for a dataset with a default source
    (Keras' download), else $INVBENCH_DATA_DIR, else None (the download)."""
    if configured:
        return Path(configured).expanduser()
    if DATASETS[dataset].needs_dir:
        return None
    chosen = os.environ.get(DATA_DIR_ENV) or None
    return Path(chosen).expanduser() if chosen else None


@functools.lru_cache(maxsize=1)
def _load(name: str, data_dir: Path | None, input_shape: tuple[int, int, int]) -> ImageData:
    data = DATASETS[name].load(data_dir, input_shape)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        array.flags.writeable = False
    return data


def load_dataset(
    name: str = "cifar10",
    data_dir: str | None = None,
    input_shape: tuple[int, int, int] = (32, 32, 3),
) -> ImageData:
    """A registered dataset's arrays, from `data_dir` or its default source.

    The last dataset read is kept, so training several configs in one
    process decodes it once; its arrays are read-only to make that safe.
    """
    if name not in DATASETS:
        raise DataError("data.name", f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    return _load(name, resolve_data_dir(data_dir, name), tuple(input_shape))


def clear_loaded() -> None:
    """Forget the dataset kept from the last `load_dataset` (a test swaps its source)."""
    _load.cache_clear()


def dataset_class_names(name: str, data_dir: str | None) -> tuple[str, ...]:
    """A dataset's classes without loading its images (a folder dataset lists its
    subfolders)."""
    dataset = DATASETS[name]
    if dataset.class_names is not None:
        return dataset.class_names
    return dataset.list_classes(resolve_data_dir(data_dir, name))


def scaled(images):
    """uint8 images as the models see them: float32 in [0, 1], as the pipelines scale them."""
    import numpy as np

    return images.astype(np.float32) / 255.0


def class_counts(labels, classes: int) -> list[int]:
    import numpy as np

    return np.bincount(labels, minlength=classes).tolist()


__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "Dataset",
    "ImageData",
    "class_counts",
    "clear_loaded",
    "dataset_class_names",
    "load_dataset",
    "resolve_data_dir",
    "scaled",
]
