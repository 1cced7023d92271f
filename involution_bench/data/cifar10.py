"""`cifar10`: CIFAR-10, 50,000 training and 10,000 test images of 10 classes, 32x32.

Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
"""

from __future__ import annotations

from pathlib import Path

from involution_bench.data.base import Dataset, ImageData

CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def _layout():
    from involution_bench.data.cifar_files import CifarLayout

    return CifarLayout(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_file="test_batch",
        label_key=b"labels",
        classes=len(CLASS_NAMES),
        keras_module="cifar10",
    )


def load(data_dir: Path | None, input_shape: tuple[int, int, int]) -> ImageData:
    from involution_bench.data.cifar_files import load_image_data

    return load_image_data(_layout(), data_dir, CLASS_NAMES)


DATASET = Dataset(
    name="cifar10",
    title="CIFAR-10",
    summary="CIFAR-10: 50,000 + 10,000 images, 32x32x3, 10 classes",
    load=load,
    image_shape=(32, 32, 3),
    class_names=CLASS_NAMES,
    layout="cifar-10-batches-py/ or cifar-10-python.tar.gz",
)
