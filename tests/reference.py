"""Plain NumPy references the tests compare the product against."""

from __future__ import annotations

import numpy as np


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TF "SAME": output ceil(size/stride), the odd padding pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return out, total // 2


def involution_reference(x, kernel, kernel_size, stride=1, groups=1):
    """The DESIGN.md formula as direct loops, in float64."""
    batch, height, width, channels = x.shape
    out_h, pad_top = same_padding(height, kernel_size, stride)
    out_w, pad_left = same_padding(width, kernel_size, stride)
    group_size = channels // groups
    out = np.zeros((batch, out_h, out_w, channels))
    for i in range(out_h):
        for j in range(out_w):
            for u in range(kernel_size):
                for v in range(kernel_size):
                    row = i * stride + u - pad_top
                    col = j * stride + v - pad_left
                    if not (0 <= row < height and 0 <= col < width):
                        continue
                    for c in range(channels):
                        weight = kernel[:, i, j, u * kernel_size + v, c // group_size]
                        out[:, i, j, c] += weight * x[:, row, col, c]
    return out
