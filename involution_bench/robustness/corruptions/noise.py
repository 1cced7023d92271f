"""The noise corruptions: Gaussian, shot (Poisson) and impulse (salt and pepper).

Each takes uint8 images `(N, H, W, C)`, a severity 1-5 and a NumPy generator,
and returns values in [0, 255]; the constants are make_cifar_c.py's.
"""

from __future__ import annotations

import numpy as np

GAUSSIAN = (0.04, 0.06, 0.08, 0.09, 0.10)  # standard deviation, images in [0, 1]
SHOT = (500, 250, 100, 75, 50)  # photons per unit intensity
IMPULSE = (0.01, 0.02, 0.03, 0.05, 0.07)  # the fraction of values replaced


def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    scale = GAUSSIAN[severity - 1]
    x = images / 255.0
    return np.clip(x + rng.normal(size=x.shape, scale=scale), 0, 1) * 255


def shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    photons = SHOT[severity - 1]
    x = images / 255.0
    return np.clip(rng.poisson(x * photons) / photons, 0, 1) * 255


def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """scikit-image's `random_noise(mode="s&p")`: each value (every channel on its own)
    is replaced with probability `amount`, by 0 or 1 with equal odds."""
    amount = IMPULSE[severity - 1]
    x = images / 255.0
    replaced = rng.random(x.shape) < amount
    salt = rng.random(x.shape) < 0.5
    x = np.where(replaced, salt.astype(np.float64), x)
    return np.clip(x, 0, 1) * 255
