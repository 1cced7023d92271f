"""The weather corruptions: snow, frost and fog.

Each takes uint8 images `(N, H, W, C)`, a severity 1-5 and a NumPy generator,
and returns values in [0, 255]; the constants are make_cifar_c.py's.

Frost overlays photographs of frost that the reference ships as image files
(`frost1.png` … `frost6.jpg` in hendrycks/robustness) and no package provides.
`frost` needs them; without them the suite leaves frost out and says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from involution_bench.robustness.corruptions.sampling import (
    clipped_zoom,
    grey,
    motion_blur,
    plasma_fractal,
)

# location, scale, zoom, threshold, blur radius, blur sigma, mixing
SNOW = (
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))  # image, frost weights
# The reference draws randint(5): the sixth file is never used.
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))  # strength, fractal decay


def snow(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Flakes from thresholded zoomed noise, streaked by a motion blur at an angle in
    [-135°, -45°] (ImageMagick's, written here), over a whitened image."""
    location, scale, zoom, threshold, radius, sigma, mixing = SNOW[severity - 1]
    x = images.astype(np.float32) / 255.0
    n, height, width, _ = x.shape
    flakes = rng.normal(size=(n, height, width, 1), loc=location, scale=scale)
    flakes = clipped_zoom(flakes, zoom)
    flakes[flakes < threshold] = 0
    flakes = (np.clip(flakes, 0, 1) * 255).astype(np.uint8)  # the reference's PNG
    angles = rng.uniform(-135, -45, size=n)
    flakes = np.round(motion_blur(flakes.astype(np.float64), radius, sigma, angles)) / 255.0
    x = mixing * x + (1 - mixing) * np.maximum(x, grey(x) * 1.5 + 0.5)
    return np.clip(x + flakes + np.rot90(flakes, k=2, axes=(1, 2)), 0, 1) * 255


def load_frost_textures(folder: Path) -> list[np.ndarray]:
    """The reference's frost photographs, each scaled by 0.2 as it scales them."""
    from PIL import Image

    textures = []
    for name in FROST_FILES:
        with Image.open(folder / name) as image:
            image = image.convert("RGB")
            size = (max(1, round(image.width * 0.2)), max(1, round(image.height * 0.2)))
            textures.append(np.asarray(image.resize(size, Image.Resampling.BILINEAR)))
    return textures


def frost(
    images: np.ndarray, severity: int, rng: np.random.Generator, textures: list[np.ndarray]
) -> np.ndarray:
    """A random crop of a random frost photograph, blended in."""
    image_weight, frost_weight = FROST[severity - 1]
    n, height, width, channels = images.shape
    overlay = np.empty((n, height, width, 3), dtype=np.float64)
    for index, choice in enumerate(rng.integers(len(textures), size=n)):
        texture = textures[choice]
        top = rng.integers(0, texture.shape[0] - height)
        left = rng.integers(0, texture.shape[1] - width)
        overlay[index] = texture[top : top + height, left : left + width]
    if channels == 1:
        overlay = grey(overlay)
    return np.clip(image_weight * images + frost_weight * overlay, 0, 255)


def fog(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A plasma fractal added, then the image rescaled to its former maximum."""
    strength, decay = FOG[severity - 1]
    x = images / 255.0
    n, height, width, _ = x.shape
    size = 1 << max(5, int(np.ceil(np.log2(max(height, width)))))  # 32 for CIFAR, as there
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + strength * plasma_fractal(rng, n, size, decay)[:, :height, :width, None]
    return np.clip(x * peak / (peak + strength), 0, 1) * 255
