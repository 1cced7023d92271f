"""The spatial perturbations: circular shifts, zero-filled translations, rotations.

All take uint8 images `(N, H, W, C)` and return float32 model inputs in
[0, 1]; every random draw comes from the generator the caller passes, so the
same seed gives every model the same perturbed images.

- Consistency (Zhang 2019; Chaman & Dokmanić's CIFAR protocol): two random
  circular shifts of each image, each axis uniform in [-3, 3] pixels.
- Translation (CIFAR-10-P's translate; Azulay & Weiss 2019): a shift of d
  pixels, zeros shifted in, in one of the four axis directions drawn per image.
- Worst of k (Engstrom et al. 2019): k random translations in [-3, 3]
  pixels (zeros shifted in), optionally with a rotation in [-30°, 30°]
  about the centre (bilinear, zeros outside).
"""

from __future__ import annotations

import numpy as np

from involution_bench.robustness.corruptions.sampling import bilinear, shifted

DIRECTIONS = np.array([(0, 1), (0, -1), (1, 0), (-1, 0)])  # (dy, dx): right, left, down, up


def scaled(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def random_offsets(rng: np.random.Generator, count: int, max_shift: int) -> np.ndarray:
    """`(count, 2)` whole-pixel (dy, dx), each uniform in [-max_shift, max_shift]."""
    return rng.integers(-max_shift, max_shift + 1, size=(count, 2))


def circular_shift(images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each image rolled by its (dy, dx): what leaves one side comes back on the other."""
    return shifted(scaled(images), offsets[:, 0], offsets[:, 1], "circular")


def translate(images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each image moved by its (dy, dx), zeros shifted in."""
    return shifted(scaled(images), offsets[:, 0], offsets[:, 1], "zeros")


def translation_offsets(rng: np.random.Generator, count: int, pixels: int) -> np.ndarray:
    """A shift of `pixels` in one of the four axis directions, drawn per image."""
    return DIRECTIONS[rng.integers(len(DIRECTIONS), size=count)] * pixels


def rotate_translate(images: np.ndarray, degrees: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each image rotated about its centre by its angle, then moved by its (dy, dx);
    bilinear, zeros outside the image."""
    n, height, width, _ = images.shape
    radians = np.deg2rad(np.asarray(degrees, dtype=np.float64)).reshape(n, 1, 1)
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    grid_y, grid_x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    # output pixel p reads the input at R⁻¹·(p - offset - centre) + centre
    y = grid_y[None] - offsets[:, 0].reshape(n, 1, 1) - centre_y
    x = grid_x[None] - offsets[:, 1].reshape(n, 1, 1) - centre_x
    cos, sin = np.cos(radians), np.sin(radians)
    rows = cos * y - sin * x + centre_y
    cols = sin * y + cos * x + centre_x
    return bilinear(scaled(images), rows, cols, "zeros").astype(np.float32)
