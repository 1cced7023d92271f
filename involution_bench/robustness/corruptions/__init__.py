"""CIFAR-10-C-style corruptions (Hendrycks & Dietterich 2019), generated locally.

The 15 corruptions of CIFAR-10-C, each at severities 1-5, with the constants
of the reference generator, hendrycks/robustness
`ImageNet-C/create_c/make_cifar_c.py`. The code is ours: NumPy, SciPy and
Pillow, vectorized over the batch, with ImageMagick's motion blur written
out. The released CIFAR-10-C was generated without a seed, so no local copy
equals its files: these are "CIFAR-10-C-style" sets, deterministic for a
seed. `docs/robustness.md` lists where they depart from the reference.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from involution_bench.robustness.corruptions import blur, digital, noise, weather

SEVERITIES = (1, 2, 3, 4, 5)
CHUNK = 1000  # images corrupted at a time: the random stream depends on it, so it is fixed


@dataclass(frozen=True)
class Corruption:
    name: str  # CIFAR-10-C's file stem: "gaussian_noise"
    title: str  # "Gaussian noise"
    family: str  # noise, blur, weather, digital
    apply: Callable[..., np.ndarray]  # (uint8 images, severity, generator) -> [0, 255]
    needs_textures: bool = False  # frost: the reference's photographs


CORRUPTIONS = (
    Corruption("gaussian_noise", "Gaussian noise", "noise", noise.gaussian_noise),
    Corruption("shot_noise", "shot noise", "noise", noise.shot_noise),
    Corruption("impulse_noise", "impulse noise", "noise", noise.impulse_noise),
    Corruption("defocus_blur", "defocus blur", "blur", blur.defocus_blur),
    Corruption("glass_blur", "glass blur", "blur", blur.glass_blur),
    Corruption("motion_blur", "motion blur", "blur", blur.motion_blur),
    Corruption("zoom_blur", "zoom blur", "blur", blur.zoom_blur),
    Corruption("snow", "snow", "weather", weather.snow),
    Corruption("frost", "frost", "weather", weather.frost, needs_textures=True),
    Corruption("fog", "fog", "weather", weather.fog),
    Corruption("brightness", "brightness", "digital", digital.brightness),
    Corruption("contrast", "contrast", "digital", digital.contrast),
    Corruption("elastic_transform", "elastic", "digital", digital.elastic),
    Corruption("pixelate", "pixelate", "digital", digital.pixelate),
    Corruption("jpeg_compression", "JPEG", "digital", digital.jpeg),
)
NAMES = tuple(corruption.name for corruption in CORRUPTIONS)


def corruption_named(name: str) -> Corruption:
    for corruption in CORRUPTIONS:
        if corruption.name == name:
            return corruption
    raise KeyError(name)


def available(frost_dir: Path | None) -> tuple[Corruption, ...]:
    """The corruptions that can be generated: frost only with its photographs."""
    return tuple(c for c in CORRUPTIONS if frost_dir is not None or not c.needs_textures)


def corrupt(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
    frost_textures: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """`images` (uint8 `(N, H, W, C)`) corrupted by `name` at `severity`, as uint8.

    The same images, name, severity and seed give the same output. Values are
    cut to uint8 as the reference's `np.uint8(...)` cuts them (towards zero).
    """
    corruption = corruption_named(name)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1-5, not {severity}")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), severity])
    out = np.empty_like(images, dtype=np.uint8)
    for start in range(0, len(images), CHUNK):
        chunk = images[start : start + CHUNK]
        if corruption.needs_textures:
            if not frost_textures:
                raise ValueError("frost needs the reference's frost photographs")
            values = corruption.apply(chunk, severity, rng, list(frost_textures))
        else:
            values = corruption.apply(chunk, severity, rng)
        out[start : start + CHUNK] = np.clip(values, 0, 255).astype(np.uint8)
    return out


def code_version() -> str:
    """A digest of this package's source: a change to any corruption renews the cache."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
