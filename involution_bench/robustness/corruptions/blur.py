"""The blur corruptions: defocus, glass, motion and zoom.

Each takes uint8 images `(N, H, W, C)`, a severity 1-5 and a NumPy generator,
and returns values in [0, 255]; the constants are make_cifar_c.py's.
"""

from __future__ import annotations

import numpy as np

from involution_bench.robustness.corruptions.sampling import (
    clipped_zoom,
    correlate_reflect101,
    gaussian,
)
from involution_bench.robustness.corruptions.sampling import (
    motion_blur as magick_motion_blur,
)

DEFOCUS = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))  # radius, alias blur
GLASS = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))  # sigma, delta, its
MOTION = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))  # radius, sigma (ImageMagick's)
ZOOM = tuple(np.arange(1, end, 0.01) for end in (1.06, 1.11, 1.16, 1.21, 1.26))  # factors


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """The reference's anti-aliased disk: a 17x17 (radius ≤ 8) indicator of the disk,
    normalized, then blurred by OpenCV's 3x3 Gaussian of sigma `alias_blur`."""
    half = 8 if radius <= 8 else int(radius)
    size = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    x, y = np.meshgrid(grid, grid)
    aliased = ((x**2 + y**2) <= radius**2).astype(np.float64)
    aliased /= aliased.sum()
    taps = np.arange(size) - size // 2
    weights = np.exp(-(taps**2) / (2 * alias_blur**2))
    weights /= weights.sum()
    return correlate_reflect101(aliased[None, :, :, None], np.outer(weights, weights))[0, :, :, 0]


def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, alias_blur = DEFOCUS[severity - 1]
    x = images / 255.0
    return np.clip(correlate_reflect101(x, disk(radius, alias_blur)), 0, 1) * 255


def glass_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, move pixels locally, blur again.

    The reference visits pixels from the bottom right and "swaps" each with a
    neighbour `(dy, dx)`, both drawn from `randint(-1, 1)`, that is from {-1, 0}.
    Its tuple swap of two NumPy views copies the neighbour in and leaves the
    neighbour as it was, and that neighbour (above or to the left) has not been
    visited yet. So each visit reads the image as it was before the iteration:
    one vectorized gather per iteration does what its loop does.
    """
    sigma, delta, iterations = GLASS[severity - 1]
    if delta != 1:  # a larger delta reads visited pixels: the gather would no longer match
        raise ValueError("glass blur's vectorized form needs max_delta 1")
    x = np.uint8(gaussian(images / 255.0, sigma) * 255)
    n, height, width, _ = x.shape
    rows = np.arange(delta + 1, height - delta + 1)  # the reference's range(H - d, d, -1)
    cols = np.arange(delta + 1, width - delta + 1)
    batch = np.arange(n)[:, None, None]
    for _ in range(iterations):
        steps = rng.integers(-delta, delta, size=(2, n, rows.size, cols.size))
        source_rows = rows[None, :, None] + steps[0]
        source_cols = cols[None, None, :] + steps[1]
        moved = x.copy()
        moved[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = x[
            batch, source_rows, source_cols
        ]
        x = moved
    return np.clip(gaussian(x / 255.0, sigma), 0, 1) * 255


def motion_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """ImageMagick's motion blur (the reference calls it through Wand), an angle per image
    uniform in [-45°, 45°], rounded to uint8 as the reference's PNG round trip does."""
    radius, sigma = MOTION[severity - 1]
    angles = rng.uniform(-45, 45, size=len(images))
    blurred = magick_motion_blur(images.astype(np.float64), radius, sigma, angles)
    return np.clip(np.round(blurred), 0, 255)


def zoom_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factors = ZOOM[severity - 1]
    x = (images / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for factor in factors:
        out += clipped_zoom(x, factor)
    return np.clip((x + out) / (len(factors) + 1), 0, 1) * 255
