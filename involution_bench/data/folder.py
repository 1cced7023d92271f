"""`folder`: any image dataset as one subfolder per class, under `train/` and `test/`.

The layout of `keras.utils.image_dataset_from_directory` and of timm's
ImageFolder:

    DIR/train/<class>/<image>.png    (or .jpg, .jpeg, .bmp, .gif)
    DIR/test/<class>/<image>.png
    DIR/val/<class>/<image>.png      (optional: the images to choose on)

`DIR` is the config's `data.dir`. Classes are the subfolders of `train/`,
in sorted order (label 0 is the first); `test/` may hold any of them. Every
image is decoded, given the channels of `model.input_shape` and resized
(bilinear, antialiased) to its height and width, and kept as uint8. Each
split is put in a fixed random order once, so `data.limit_train` and
`data.limit_test` take images of every class, not the first class only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from involution_bench.data.base import Dataset, ImageData
from involution_bench.errors import DataError

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # as Keras accepts them
ORDER_SEED = 0


def class_names(data_dir: Path | None) -> tuple[str, ...]:
    """The subfolders of `train/`, sorted: the classes, by label."""
    if data_dir is None:
        raise DataError(
            "data.dir", "the folder dataset needs data.dir: a folder with train/, test/"
        )
    train = data_dir / "train"
    if not data_dir.is_dir():
        raise DataError(str(data_dir), "data folder does not exist")
    if not train.is_dir():
        raise DataError(str(data_dir), "holds no train/ folder (one subfolder per class)")
    names = tuple(sorted(child.name for child in train.iterdir() if child.is_dir()))
    if not names:
        raise DataError(str(train), "holds no class subfolders")
    return names


def load(data_dir: Path | None, input_shape: tuple[int, int, int]) -> ImageData:
    names = class_names(data_dir)
    test = data_dir / "test"
    if not test.is_dir():
        raise DataError(str(data_dir), "holds no test/ folder (one subfolder per class)")
    unknown = sorted(
        child.name for child in test.iterdir() if child.is_dir() and child.name not in names
    )
    if unknown:
        raise DataError(str(test / unknown[0]), "is a class that train/ does not have")
    x_train, y_train = _read_split(data_dir / "train", names, input_shape)
    x_test, y_test = _read_split(test, names, input_shape)
    found = ImageData(x_train, y_train, x_test, y_test, names, str(data_dir))
    val = data_dir / "val"
    if not val.is_dir():
        return found
    x_val, y_val = _read_split(val, names, input_shape)
    return replace(found, x_val=x_val, y_val=y_val, validation="val/")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def _read_split(split: Path, names: tuple[str, ...], input_shape: tuple[int, int, int]):
    import numpy as np

    files = [
        (path, label)
        for label, name in enumerate(names)
        if (split / name).is_dir()
        for path in _image_files(split / name)
    ]
    if not files:
        raise DataError(str(split), "holds no images (.png, .jpg, .jpeg, .bmp, .gif)")
    height, width, channels = input_shape
    images = np.empty((len(files), height, width, channels), np.uint8)
    for index, (path, _) in enumerate(files):
        images[index] = _decode(path, height, width, channels)
    labels = np.array([label for _, label in files], np.int32)
    order = np.random.default_rng(ORDER_SEED).permutation(len(files))
    return np.ascontiguousarray(images[order]), labels[order]


def _decode(path: Path, height: int, width: int, channels: int):
    from involution_bench.system.quiet import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    try:
        image = tf.io.decode_image(path.read_bytes(), channels=channels, expand_animations=False)
    except (OSError, tf.errors.InvalidArgumentError) as exc:
        reason = getattr(exc, "message", None) or str(exc)
        raise DataError(
            str(path), f"cannot be decoded as an image ({reason.splitlines()[0]})"
        ) from None
    if tuple(image.shape[:2]) != (height, width):
        image = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
        image = tf.clip_by_value(tf.round(image), 0, 255)
    return tf.cast(image, tf.uint8).numpy()


DATASET = Dataset(
    name="folder",
    title="the image folder",
    summary="images in one subfolder per class under data.dir/train and data.dir/test",
    load=load,
    image_shape=None,
    class_names=None,
    needs_dir=True,
    list_classes=class_names,
    layout="train/<class>/*.png and test/<class>/*.png",
)
