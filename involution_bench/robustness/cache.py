"""Generated corruption sets on disk, so that the second model evaluates in seconds.

A set is keyed by the clean images' digest, the corruption, its severity,
the seed and the corruption code's digest (`corruptions.code_version`), so a
change to any of them generates it afresh. Sets live under
`$INVBENCH_CACHE_DIR/corruptions/` (see `system.cache`); deleting the folder
only costs regeneration. A cache that cannot be written is skipped, with one
line on standard error: the evaluation goes on.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from involution_bench.robustness.corruptions import code_version
from involution_bench.system.cache import cache_dir


def images_digest(images: np.ndarray) -> str:
    digest = hashlib.sha256(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()[:16]


class CorruptionCache:
    def __init__(self, images: np.ndarray, root: Path | None = None, extra: str = "") -> None:
        self.folder = (root or cache_dir() / "corruptions") / images_digest(images)
        self.code = code_version() + extra  # extra: e.g. the frost photographs' digest
        self.hits = 0
        self._warned = False

    def path(self, name: str, severity: int, seed: int) -> Path:
        return self.folder / f"{name}-s{severity}-seed{seed}-{self.code}.npy"

    def get(
        self, name: str, severity: int, seed: int, generate: Callable[[], np.ndarray]
    ) -> np.ndarray:
        path = self.path(name, severity, seed)
        if path.is_file():
            try:
                loaded = np.load(path)
                self.hits += 1
                return loaded
            except (OSError, ValueError):  # torn or foreign: generate it again
                pass
        images = generate()
        self._store(path, images)
        return images

    def _store(self, path: Path, images: np.ndarray) -> None:
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
            with os.fdopen(handle, "wb") as file:
                np.save(file, images)
            os.replace(temporary, path)
        except OSError as exc:
            if temporary:
                Path(temporary).unlink(missing_ok=True)
            if not self._warned:
                reason = exc.strerror or str(exc)
                print(f"{path.parent}: {reason}; corrupted sets are not cached", file=sys.stderr)
                self._warned = True
