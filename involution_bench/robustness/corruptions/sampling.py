"""Image operations the corruptions share, on batches `(N, H, W, C)` at once.

Bilinear resampling with the border rules the reference generator's
libraries use, Gaussian filtering as scikit-image's `gaussian` does it,
ImageMagick's motion blur, SciPy's clipped zoom, and the diamond-square
plasma fractal, each vectorized over the batch (and over per-image random
parameters) instead of looping over images.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

# How an index outside [0, n) maps back inside:
# - "reflect101": d c b | a b c d | c b a (OpenCV's BORDER_REFLECT_101, NumPy's "reflect");
# - "symmetric": c b a | a b c d | d c b (SciPy's "reflect");
# - "edge": a a a | a b c d | d d d (ImageMagick's edge pixels);
# - "zeros": outside is black.
BORDERS = ("reflect101", "symmetric", "edge", "zeros")


def border_index(index: np.ndarray, size: int, border: str) -> np.ndarray:
    """Integer indices mapped into [0, size) by `border` ("zeros" clamps; its caller masks)."""
    if border == "reflect101" and size > 1:
        period = 2 * (size - 1)
        index = np.mod(index, period)
        return np.where(index >= size, period - index, index)
    if border == "symmetric":
        period = 2 * size
        index = np.mod(index, period)
        return np.where(index >= size, period - 1 - index, index)
    return np.clip(index, 0, size - 1)


def bilinear(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, border: str) -> np.ndarray:
    """`images` sampled at real positions: `rows`, `cols` of shape `(N, H', W')`."""
    n, height, width, _ = images.shape
    top, left = np.floor(rows), np.floor(cols)
    down, right = (rows - top)[..., None], (cols - left)[..., None]
    top, left = top.astype(np.int64), left.astype(np.int64)
    batch = np.arange(n).reshape(n, 1, 1)
    out = 0.0
    for row_step, row_weight in ((0, 1 - down), (1, down)):
        for col_step, col_weight in ((0, 1 - right), (1, right)):
            r, c = top + row_step, left + col_step
            pixel = images[batch, border_index(r, height, border), border_index(c, width, border)]
            if border == "zeros":
                inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
                pixel = pixel * inside[..., None]
            out = out + row_weight * col_weight * pixel
    return out


def shifted(images: np.ndarray, dy: np.ndarray, dx: np.ndarray, border: str) -> np.ndarray:
    """Each image moved by its own whole-pixel (dy, dx): output[y, x] = input[y - dy, x - dx]."""
    n, height, width, _ = images.shape
    rows = np.arange(height)[None, :, None] - np.asarray(dy).reshape(n, 1, 1)
    cols = np.arange(width)[None, None, :] - np.asarray(dx).reshape(n, 1, 1)
    rows, cols = (
        np.broadcast_to(rows, (n, height, width)),
        np.broadcast_to(cols, (n, height, width)),
    )
    batch = np.arange(n).reshape(n, 1, 1)
    if border == "circular":
        return images[batch, rows % height, cols % width]
    out = images[batch, border_index(rows, height, border), border_index(cols, width, border)]
    if border == "zeros":
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        out = out * inside[..., None].astype(images.dtype)
    return out


def gaussian(images: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0):
    """scikit-image's `gaussian(image, sigma, channel_axis=-1)` on every image: SciPy's
    filter over rows and columns only, with skimage's defaults (nearest edge, 4 sigma)."""
    return ndimage.gaussian_filter(
        images, sigma=(0, sigma, sigma, 0)[: images.ndim], mode=mode, truncate=truncate
    )


def correlate_reflect101(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """OpenCV's `filter2D` (correlation, BORDER_REFLECT_101) per channel, through the FFT."""
    from scipy.signal import fftconvolve

    k_rows, k_cols = kernel.shape
    pad_rows, pad_cols = k_rows // 2, k_cols // 2
    padded = np.pad(
        images, ((0, 0), (pad_rows, pad_rows), (pad_cols, pad_cols), (0, 0)), mode="reflect"
    )
    flipped = kernel[::-1, ::-1][None, :, :, None]  # convolution with a flip is correlation
    return fftconvolve(padded, flipped, mode="valid", axes=(1, 2))


def motion_blur(images: np.ndarray, radius: int, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's `MotionBlurImage(radius, sigma, angle)`, one angle (degrees) per image.

    Its kernel is one-sided: 2·radius + 1 taps along the angle, weighted by a
    Gaussian of the tap's distance, each tap's offset rounded to whole pixels,
    edge pixels repeated beyond the border.
    """
    width = 2 * math.ceil(radius) + 1
    weights = np.exp(-(np.arange(width) ** 2) / (2.0 * sigma * sigma))
    weights /= weights.sum()
    radians = np.deg2rad(np.asarray(angles, dtype=np.float64))
    out = np.zeros(images.shape, dtype=np.float64)
    for tap, weight in enumerate(weights):
        # ImageMagick's ceil(i·cos/hypot - 0.5): hypot of (w·sin, w·cos) is w.
        dx = np.ceil(tap * np.cos(radians) - 0.5).astype(np.int64)
        dy = np.ceil(tap * np.sin(radians) - 0.5).astype(np.int64)
        out += weight * shifted(images, -dy, -dx, "edge")  # pixel (y, x) reads (y + dy, x + dx)
    return out


def clipped_zoom(images: np.ndarray, factor: float) -> np.ndarray:
    """The centre 1/factor of every image, zoomed back to full size, as the reference
    generator's `clipped_zoom` does with SciPy's linear `zoom`.

    Linear zoom is separable, so it is two small matrix products: row and column
    `i` of the zoomed crop read crop position `i · (crop - 1) / (zoomed - 1)`.
    """
    height = images.shape[1]
    crop = int(np.ceil(height / factor))
    top = (height - crop) // 2
    zoomed = round(crop * factor)
    trim = (zoomed - height) // 2
    positions = (np.arange(trim, trim + height) * (crop - 1) / max(zoomed - 1, 1)).clip(0, crop - 1)
    low = np.floor(positions).astype(np.int64)
    high = np.minimum(low + 1, crop - 1)
    weights = np.zeros((height, crop))
    weights[np.arange(height), low] += 1 - (positions - low)
    weights[np.arange(height), high] += positions - low
    weights = weights.astype(images.dtype)
    cropped = images[:, top : top + crop, top : top + crop]
    return np.einsum("ij,njkc,lk->nilc", weights, cropped, weights, optimize=True)


def plasma_fractal(rng: np.random.Generator, count: int, size: int, decay: float) -> np.ndarray:
    """`count` diamond-square height maps `(count, size, size)` in [0, 1], `size` a power
    of two (the reference generator's `plasma_fractal`, for a batch)."""
    maps = np.zeros((count, size, size))
    step, wibble = size, 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares = squares + np.roll(squares, -1, axis=2)
        maps[:, half:size:step, half:size:step] = wibbled_mean(squares)
        centres = maps[:, half:size:step, half:size:step]
        corners = maps[:, 0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0:size:step, half:size:step] = wibbled_mean(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half:size:step, 0:size:step] = wibbled_mean(top)
        step //= 2
        wibble /= decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)


def grey(images: np.ndarray) -> np.ndarray:
    """OpenCV's RGB-to-grey weights (a one-channel image is its own grey), `(N, H, W, 1)`."""
    if images.shape[-1] == 1:
        return images
    return images[..., :3] @ np.array([0.299, 0.587, 0.114])[:, None]
