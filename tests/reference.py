"""Plain NumPy references the tests compare the product against.

The involution formula they implement is the one in the docstring of
`involution_bench/ops/involution.py` (and docs/involution.md): for output
position (i, j) and channel c in group g = c // (C / G),

    out[i, j, c] = sum_{u, v} kernel[i, j, u*K + v, g] * x[i*s + u - p, j*s + v - p, c]

with TF "SAME" padding p.
"""

from __future__ import annotations

import numpy as np


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TF "SAME": output ceil(size/stride), the odd padding pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return out, total // 2


def contributions(x_shape, kernel_size, stride, groups):
    """Every (i, j, tap, row, col, channel, group) term of the formula above."""
    _, height, width, channels = x_shape
    out_h, pad_top = same_padding(height, kernel_size, stride)
    out_w, pad_left = same_padding(width, kernel_size, stride)
    group_size = channels // groups
    for i in range(out_h):
        for j in range(out_w):
            for u in range(kernel_size):
                for v in range(kernel_size):
                    row = i * stride + u - pad_top
                    col = j * stride + v - pad_left
                    if not (0 <= row < height and 0 <= col < width):
                        continue
                    for c in range(channels):
                        yield i, j, u * kernel_size + v, row, col, c, c // group_size


def involution_reference(x, kernel, kernel_size, stride=1, groups=1):
    """The formula above as direct loops, in float64."""
    out = np.zeros((*kernel.shape[:3], x.shape[-1]))
    for i, j, tap, row, col, c, g in contributions(x.shape, kernel_size, stride, groups):
        out[:, i, j, c] += kernel[:, i, j, tap, g] * x[:, row, col, c]
    return out


def involution_gradients_reference(x, kernel, upstream, kernel_size, stride=1, groups=1):
    """(d input, d kernel) of sum(upstream * involution(x, kernel)), as direct loops."""
    grad_x = np.zeros(x.shape)
    grad_kernel = np.zeros(kernel.shape)
    for i, j, tap, row, col, c, g in contributions(x.shape, kernel_size, stride, groups):
        grad_x[:, row, col, c] += kernel[:, i, j, tap, g] * upstream[:, i, j, c]
        grad_kernel[:, i, j, tap, g] += x[:, row, col, c] * upstream[:, i, j, c]
    return grad_x, grad_kernel
