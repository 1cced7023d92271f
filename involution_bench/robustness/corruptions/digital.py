"""The digital corruptions: brightness, contrast, elastic, pixelate and JPEG.

Each takes uint8 images `(N, H, W, C)`, a severity 1-5 and a NumPy generator,
and returns values in [0, 255]; the constants are make_cifar_c.py's (the
elastic transform's scale with the image's side, 32 in the reference).
"""

from __future__ import annotations

import io

import numpy as np

from involution_bench.robustness.corruptions.sampling import bilinear, gaussian

BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to the HSV value
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)  # the factor on the distance from the mean
# displacement scale, its smoothness, the affine jitter; times the image's side
ELASTIC = (
    (0, 0, 0.08),
    (0.05, 0.2, 0.07),
    (0.08, 0.06, 0.06),
    (0.1, 0.04, 0.05),
    (0.1, 0.03, 0.03),
)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # the side it is reduced to, as a fraction
JPEG_QUALITY = (80, 65, 58, 50, 40)


def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    x = images / 255.0
    if x.shape[-1] == 1:  # a grey image's value is itself
        return np.clip(x + BRIGHTNESS[severity - 1], 0, 1) * 255
    hsv = rgb_to_hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + BRIGHTNESS[severity - 1], 0, 1)
    return np.clip(hsv_to_rgb(hsv), 0, 1) * 255


def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = images / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - means) * CONTRAST[severity - 1] + means, 0, 1) * 255


def elastic(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A random affine warp (OpenCV's `warpAffine`, reflect-101 border), then a smooth
    random displacement field (SciPy's `map_coordinates`, symmetric border)."""
    x = images.astype(np.float32) / 255.0
    n, height, width, _ = x.shape
    side = min(height, width)
    scale, smoothness, jitter = (value * side for value in ELASTIC[severity - 1])

    centre, square = np.float32((height, width)) // 2, side // 3
    source = np.float32(
        [centre + square, [centre[0] + square, centre[1] - square], centre - square]
    )  # three (x, y) points, as the reference builds them
    target = source + rng.uniform(-jitter, jitter, size=(n, 3, 2)).astype(np.float32)
    # warpAffine reads output pixel p at M⁻¹·p: the affine map from target to source.
    ones = np.ones((n, 3, 1), dtype=np.float64)
    inverse = np.linalg.solve(
        np.concatenate([target, ones], axis=2), np.broadcast_to(source, (n, 3, 2))
    )
    grid_y, grid_x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    points = np.stack([grid_x, grid_y, np.ones_like(grid_x)], axis=-1).astype(np.float64)
    mapped = np.einsum("hwk,nkj->nhwj", points, inverse)  # (x, y) in the input
    x = bilinear(x, mapped[..., 1], mapped[..., 0], "reflect101")

    fields = rng.uniform(-1, 1, size=(2, n, height, width))
    dx = gaussian(fields[0], smoothness, mode="reflect", truncate=3) * scale
    dy = gaussian(fields[1], smoothness, mode="reflect", truncate=3) * scale
    x = bilinear(x, grid_y + dy.astype(np.float32), grid_x + dx.astype(np.float32), "symmetric")
    return np.clip(x, 0, 1) * 255


def _per_image(images: np.ndarray, change) -> np.ndarray:
    from PIL import Image

    out = np.empty_like(images)
    grey = images.shape[-1] == 1
    for index, array in enumerate(images):
        image = Image.fromarray(array[..., 0] if grey else array)
        changed = np.asarray(change(image))
        out[index] = changed[..., None] if grey else changed
    return out


def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Down to a fraction of the side and back up, with Pillow's box filter."""
    from PIL import Image

    fraction = PIXELATE[severity - 1]
    height, width = images.shape[1:3]
    small = (int(width * fraction), int(height * fraction))
    box = Image.Resampling.BOX
    return _per_image(images, lambda image: image.resize(small, box).resize((width, height), box))


def jpeg(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Pillow's JPEG encoder at the severity's quality, decoded again."""
    from PIL import Image

    quality = JPEG_QUALITY[severity - 1]

    def compressed(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(buffer).convert(image.mode)

    return _per_image(images, compressed)
