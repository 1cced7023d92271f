"""What a dataset is to invbench: its arrays and classes, and its registry entry.

`ImageData` holds a dataset as arrays: uint8 images `(N, H, W, C)` and int32
labels, with its class names and where it came from. A `Dataset` is one
entry of the registry (`involution_bench.data.DATASETS`): how to load it, and
what can be known of it before loading (a fixed image shape, fixed classes),
so configs are checked before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ImageData:
    """A dataset as arrays: images `(N, H, W, C)` uint8, labels `(N,)` int32."""

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    class_names: tuple[str, ...]
    source: str
    # The images a run chooses on (best epoch, best.keras, early stopping), once
    # `data.split.with_validation` has set them; a loader may give its own (val/).
    x_val: Any = None
    y_val: Any = None
    validation: str | None = None  # where they came from: "split", "val/" or "test"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def limited(self, train: int | None, test: int | None) -> ImageData:
        """The first `train` and `test` images (all where None); validation as it is,
        unless it is the test set."""
        on_test = self.validation == "test"
        return replace(
            self,
            x_train=self.x_train[:train],
            y_train=self.y_train[:train],
            x_test=self.x_test[:test],
            y_test=self.y_test[:test],
            x_val=self.x_test[:test] if on_test else self.x_val,
            y_val=self.y_test[:test] if on_test else self.y_val,
        )


# (data folder or None for the default source, the model's input shape) -> arrays
Loader = Callable[[Path | None, tuple[int, int, int]], ImageData]


@dataclass(frozen=True)
class Dataset:
    """One registered dataset."""

    name: str
    title: str  # as people write it: "CIFAR-10"
    summary: str  # one line for `invbench data` and the docs
    load: Loader
    image_shape: tuple[int, int, int] | None  # fixed, or None: resized to model.input_shape
    class_names: tuple[str, ...] | None  # fixed, or None: read from the data
    needs_dir: bool = False  # no default source: data.dir must name the folder
    # the classes of a dataset whose classes are not fixed, read without its images
    list_classes: Callable[[Path | None], tuple[str, ...]] | None = None
    # the offline layout, for messages: what data.dir (or $INVBENCH_DATA_DIR) must hold
    layout: str = ""
