"""CIFAR's official python layout, read safely: the batches of CIFAR-10 and CIFAR-100.

An offline copy is a folder holding the batches' folder (`cifar-10-batches-py/`,
`cifar-100-python/`) or its archive (`cifar-10-python.tar.gz`,
`cifar-100-python.tar.gz`). Its pickles are read with an unpickler that only
rebuilds plain data and NumPy arrays, so a tampered file cannot run code.
Without a folder, Keras downloads the dataset into its cache.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from involution_bench.data import DATA_DIR_ENV
from involution_bench.data.base import ImageData
from involution_bench.errors import DataError

IMAGE_SHAPE = (32, 32, 3)
IMAGE_VALUES = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]


@dataclass(frozen=True)
class CifarLayout:
    """Where a CIFAR dataset's batches are, and how its labels are stored."""

    title: str  # "CIFAR-10"
    folder: str  # the batches' folder, also the top folder of the archive
    archive: str
    train_files: tuple[str, ...]
    test_file: str
    label_key: bytes
    classes: int
    keras_module: str  # keras.datasets.<module>.load_data
    keras_options: tuple[tuple[str, str], ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file)

    def describe(self) -> str:
        return f"{self.folder}/ or {self.archive}"


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]


def load_image_data(
    layout: CifarLayout, data_dir: Path | None, class_names: tuple[str, ...]
) -> ImageData:
    """A CIFAR dataset as `ImageData`, from `data_dir` or Keras' download."""
    *arrays, source = load_cifar(layout, data_dir)
    return ImageData(*arrays, class_names, source)


def load_cifar(layout: CifarLayout, data_dir: Path | None) -> Arrays:
    """(x_train, y_train, x_test, y_test, source) from `data_dir`, or Keras' download."""
    return _load_keras(layout) if data_dir is None else _load_offline(layout, data_dir)


def _load_keras(layout: CifarLayout) -> Arrays:
    from involution_bench.system.quiet import import_tensorflow

    import_tensorflow()  # the download path alone needs Keras
    import keras

    loader = getattr(keras.datasets, layout.keras_module).load_data
    try:
        (x_train, y_train), (x_test, y_test) = loader(**dict(layout.keras_options))
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{layout.title} download",
            f"failed ({reason}); point {DATA_DIR_ENV} or data.dir at an offline copy",
        ) from None
    return (
        x_train,
        y_train.reshape(-1).astype(np.int32),
        x_test,
        y_test.reshape(-1).astype(np.int32),
        "Keras download cache (~/.keras/datasets)",
    )


def _load_offline(layout: CifarLayout, data_dir: Path) -> Arrays:
    if not data_dir.is_dir():
        raise DataError(str(data_dir), "data folder does not exist")
    folder, archive = data_dir / layout.folder, data_dir / layout.archive
    if folder.is_dir():
        blobs = {}
        for name in layout.files:
            path = folder / name
            if not path.is_file():
                raise DataError(str(path), f"missing batch file (incomplete {layout.title} copy)")
            blobs[name] = path.read_bytes()
        source = str(folder)
    elif archive.is_file():
        blobs = _read_archive(layout, archive)
        source = str(archive)
    else:
        raise DataError(str(data_dir), f"holds neither {layout.folder}/ nor {layout.archive}")
    train = [_parse_batch(layout, blobs[name], f"{source}/{name}") for name in layout.train_files]
    x_test, y_test = _parse_batch(layout, blobs[layout.test_file], f"{source}/{layout.test_file}")
    return (
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        x_test,
        y_test,
        source,
    )


def _read_archive(layout: CifarLayout, archive: Path) -> dict[str, bytes]:
    wanted = {f"{layout.folder}/{name}": name for name in layout.files}
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


def _parse_batch(layout: CifarLayout, blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _DataUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means a damaged file
        raise DataError(where, f"truncated or corrupted batch file ({exc})") from None
    key = layout.label_key
    if not isinstance(batch, dict) or b"data" not in batch or key not in batch:
        raise DataError(where, f"not a {layout.title} batch (no data and {key.decode()})")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_VALUES:
        raise DataError(where, f"data must be uint8 rows of {IMAGE_VALUES} values")
    if labels.shape != (len(data),):
        raise DataError(where, f"{len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= layout.classes):
        raise DataError(where, f"labels outside 0..{layout.classes - 1}")
    # Rows hold 1024 red, then green, then blue values.
    height, width, channels = IMAGE_SHAPE
    images = data.reshape(-1, channels, height, width).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32)
