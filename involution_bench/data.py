"""CIFAR-10: the arrays (Keras download or an offline copy) and the tf.data pipelines.

Images stay uint8 in memory (150 MB for the training set) and are scaled to
[0, 1] float32 inside the pipeline, batch by batch; the article's float64
copies cost over a gigabyte.

An offline copy is a folder holding `cifar-10-batches-py/` or
`cifar-10-python.tar.gz` in the official python layout. Its pickles are read
with an unpickler that only rebuilds plain data and NumPy arrays, so a
tampered file cannot run code.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from involution_bench.config import IMAGE_SHAPE, NUM_CLASSES
from involution_bench.errors import DataError

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
DATA_DIR_ENV = "INVBENCH_DATA_DIR"
BATCHES_FOLDER = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_VALUES = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]


@dataclass(frozen=True)
class Cifar10:
    """The data set as arrays: images `(N, 32, 32, 3)` uint8, labels `(N,)` int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def limited(self, train: int | None, test: int | None) -> Cifar10:
        """The first `train` and `test` images (all where None)."""
        return Cifar10(
            self.x_train[:train],
            self.y_train[:train],
            self.x_test[:test],
            self.y_test[:test],
            self.source,
        )


def resolve_data_dir(configured: str | None) -> Path | None:
    """The offline folder to use: the config's `data.dir`, else $INVBENCH_DATA_DIR, else None."""
    chosen = configured or os.environ.get(DATA_DIR_ENV) or None
    return Path(chosen).expanduser() if chosen else None


@functools.lru_cache(maxsize=1)
def load_cifar10(data_dir: Path | None = None) -> Cifar10:
    """CIFAR-10 from an offline folder, or through Keras' download cache when None.

    The last data set read is kept, so training several configs in one
    process decodes it once; its arrays are read-only to make that safe.
    """
    data = _load_keras() if data_dir is None else _load_offline(data_dir)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        array.flags.writeable = False
    return data


def _load_keras() -> Cifar10:
    from involution_bench.quiet import import_tensorflow

    import_tensorflow()  # the download path alone needs Keras
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            "CIFAR-10 download",
            f"failed ({reason}); point {DATA_DIR_ENV} or data.dir at an offline copy",
        ) from None
    return Cifar10(
        x_train,
        y_train.reshape(-1).astype(np.int32),
        x_test,
        y_test.reshape(-1).astype(np.int32),
        "Keras download cache (~/.keras/datasets)",
    )


def _load_offline(data_dir: Path) -> Cifar10:
    if not data_dir.is_dir():
        raise DataError(str(data_dir), "data folder does not exist")
    folder, archive = data_dir / BATCHES_FOLDER, data_dir / ARCHIVE_NAME
    if folder.is_dir():
        blobs = {}
        for name in (*TRAIN_BATCHES, TEST_BATCH):
            path = folder / name
            if not path.is_file():
                raise DataError(str(path), "missing batch file (incomplete CIFAR-10 copy)")
            blobs[name] = path.read_bytes()
        source = str(folder)
    elif archive.is_file():
        blobs = _read_archive(archive)
        source = str(archive)
    else:
        raise DataError(str(data_dir), f"holds neither {BATCHES_FOLDER}/ nor {ARCHIVE_NAME}")
    train = [_parse_batch(blobs[name], f"{source}/{name}") for name in TRAIN_BATCHES]
    x_test, y_test = _parse_batch(blobs[TEST_BATCH], f"{source}/{TEST_BATCH}")
    return Cifar10(
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        x_test,
        y_test,
        source,
    )


def _read_archive(archive: Path) -> dict[str, bytes]:
    wanted = {f"{BATCHES_FOLDER}/{name}": name for name in (*TRAIN_BATCHES, TEST_BATCH)}
    blobs = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    blobs[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(str(archive), f"truncated or corrupted archive ({exc})") from None
    missing = sorted(set(wanted.values()) - set(blobs))
    if missing:
        raise DataError(str(archive), f"archive lacks {', '.join(missing)}")
    return blobs


class _DataUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, bytes and NumPy arrays; refuses every other global."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _parse_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _DataUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means a damaged file
        raise DataError(where, f"truncated or corrupted batch file ({exc})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(where, "not a CIFAR-10 batch (no data and labels)")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_VALUES:
        raise DataError(where, f"data must be uint8 rows of {IMAGE_VALUES} values")
    if labels.shape != (len(data),):
        raise DataError(where, f"{len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(where, "labels outside 0..9")
    # Rows hold 1024 red, then green, then blue values.
    height, width, channels = IMAGE_SHAPE
    images = data.reshape(-1, channels, height, width).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32)


@dataclass(frozen=True)
class Pipelines:
    """The tf.data inputs of a run: `train` streams epoch after epoch."""

    train: Any
    validation: Any
    steps_per_epoch: int


def epoch_order(size: int, seed: int, epoch: int):
    """The training images' order in `epoch`: a permutation fixed by (seed, epoch)
    alone, so a resumed run sees exactly the order it would have seen."""
    import tensorflow as tf

    return tf.argsort(tf.random.stateless_uniform([size], seed=[seed, epoch]))


def augment_batch(images, seed):
    """Random crop after 4-pixel zero padding and random horizontal flip, per image.

    Stateless: the same `seed` (a pair of integers) gives the same batch.
    """
    import tensorflow as tf

    seed = tf.convert_to_tensor(seed, tf.int64)
    count, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [4, 4], [4, 4], [0, 0]])
    offsets = tf.random.stateless_uniform([count, 2], seed=seed, maxval=9, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[tf.newaxis]
    cols = offsets[:, 1:] + tf.range(width)[tf.newaxis]
    cropped = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([count], seed=seed + tf.constant([0, 1], tf.int64)) < 0.5
    return tf.where(flip[:, tf.newaxis, tf.newaxis, tf.newaxis], cropped[:, :, ::-1], cropped)


def make_datasets(
    data: Cifar10, batch_size: int, seed: int, first_epoch: int = 0, augment: bool = False
) -> Pipelines:
    """Train and validation pipelines; train starts at `first_epoch` and never ends.

    Fit it with `steps_per_epoch` (Keras then keeps one iterator across epochs).
    Batches never straddle two epochs; images are scaled batch by batch, and
    augmented (train only) with seeds from (seed, epoch, batch).
    """
    import tensorflow as tf

    def scale(images, labels):
        return tf.cast(images, tf.float32) / 255.0, labels

    size = len(data.x_train)
    images, labels = tf.constant(data.x_train), tf.constant(data.y_train)

    def epoch_batches(epoch):
        order = epoch_order(size, seed, tf.cast(epoch, tf.int32))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        steps = tf.data.Dataset.range(2**31 - 1)
        return tf.data.Dataset.zip(batches, steps).map(lambda order, step: (order, epoch, step))

    def load(order, epoch, step):
        batch_images, batch_labels = scale(tf.gather(images, order), tf.gather(labels, order))
        if augment:
            batch_seed = tf.stack([tf.cast(seed, tf.int64) * 100_003 + epoch, step])
            batch_images = augment_batch(batch_images, batch_seed)
        return batch_images, batch_labels

    autotune = tf.data.AUTOTUNE
    train = (
        tf.data.Dataset.range(first_epoch, 2**31 - 1)
        .flat_map(epoch_batches)
        .map(load, num_parallel_calls=autotune)
        .prefetch(autotune)
    )
    validation = (
        tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test))
        .batch(batch_size)
        .map(scale, num_parallel_calls=autotune)
        .prefetch(autotune)
    )
    return Pipelines(train, validation, -(-size // batch_size))


def scaled(images: np.ndarray) -> np.ndarray:
    """uint8 images as the models see them: float32 in [0, 1], as the pipelines scale them."""
    return images.astype(np.float32) / 255.0


def class_counts(labels: np.ndarray) -> list[int]:
    return np.bincount(labels, minlength=len(CLASS_NAMES)).tolist()
