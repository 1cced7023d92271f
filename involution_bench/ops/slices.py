"""Involution in pure TensorFlow: K*K shifted views of the input, and their gradients.

No tensor K*K times the size of the input is ever built (the article's
`extract_patches` form does build one). Every pass is a sum over the K*K
taps of elementwise products of same-sized slices, which XLA fuses into a
single loop. The gradients are written out by hand in that same form: left
to autodiff, each tap's gradient would be scattered into a full-size
zero tensor and the K*K of them added up, which is many times slower.

For the input gradient with stride s, the input is split into s*s phases
(rows y = s*y' + a, columns x = s*x' + b); within a phase every covering tap
lands on a plain, unstrided slice of the output gradient.
"""

from __future__ import annotations

import tensorflow as tf


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(output size, padding before) of TF "SAME": the odd padding pixel goes after."""
    out = -(-size // stride)
    return out, max((out - 1) * stride + kernel_size - size, 0) // 2


def involution_slices(
    inputs: tf.Tensor, kernel: tf.Tensor, kernel_size: int, stride: int, groups: int
) -> tf.Tensor:
    """out[b, i, j, c] = sum_{u,v} kernel[b, i, j, u*K+v, g(c)] * x[b, i*s+u-p, j*s+v-p, c].

    Always compiled by XLA (inside an XLA-compiled model it is simply part of
    it): uncompiled, the K*K strided slices cost several times more.
    """
    return _compiled(inputs, kernel, kernel_size, stride, groups)


def _involution_slices(inputs, kernel, kernel_size, stride, groups):
    height, width = inputs.shape[1], inputs.shape[2]
    if height is None or width is None:  # the hand-written input gradient needs the sizes
        return forward(inputs, kernel, kernel_size, stride, groups)

    @tf.custom_gradient
    def op(inputs, kernel):
        def gradient(upstream):
            return (
                input_gradient(upstream, kernel, height, width, kernel_size, stride, groups),
                kernel_gradient(upstream, inputs, kernel_size, stride, groups),
            )

        return forward(inputs, kernel, kernel_size, stride, groups), gradient

    return op(inputs, kernel)


_compiled = tf.function(_involution_slices, jit_compile=True)


def _windows(inputs: tf.Tensor, kernel_size: int, stride: int, groups: int):
    """(tap, the input values that tap meets at every output position, grouped)."""
    channels = inputs.shape[-1]
    shape = tf.shape(inputs)
    batch, height, width = shape[0], shape[1], shape[2]
    out_height = (height + stride - 1) // stride
    out_width = (width + stride - 1) // stride
    pad_height = tf.maximum((out_height - 1) * stride + kernel_size - height, 0)
    pad_width = tf.maximum((out_width - 1) * stride + kernel_size - width, 0)
    padded = tf.pad(
        inputs,
        [
            [0, 0],
            [pad_height // 2, pad_height - pad_height // 2],
            [pad_width // 2, pad_width - pad_width // 2],
            [0, 0],
        ],
    )
    grouped_shape = [batch, out_height, out_width, groups, channels // groups]
    for u in range(kernel_size):
        for v in range(kernel_size):
            window = padded[
                :,
                u : u + (out_height - 1) * stride + 1 : stride,
                v : v + (out_width - 1) * stride + 1 : stride,
                :,
            ]
            yield u * kernel_size + v, tf.reshape(window, grouped_shape)


def forward(inputs, kernel, kernel_size, stride, groups):
    # One tensor per tap; with autodiff, unstack's gradient is a cheap stack.
    taps = tf.unstack(kernel[..., tf.newaxis], num=kernel_size**2, axis=3)
    output = tf.add_n(
        [window * taps[tap] for tap, window in _windows(inputs, kernel_size, stride, groups)]
    )
    shape = tf.shape(output)
    return tf.reshape(output, [shape[0], shape[1], shape[2], inputs.shape[-1]])


def kernel_gradient(upstream, inputs, kernel_size, stride, groups):
    channels = inputs.shape[-1]
    shape = tf.shape(upstream)
    grouped = tf.reshape(upstream, [shape[0], shape[1], shape[2], groups, channels // groups])
    per_tap = [
        tf.reduce_sum(window * grouped, axis=-1)
        for _, window in _windows(inputs, kernel_size, stride, groups)
    ]
    return tf.stack(per_tap, axis=3)


def input_gradient(upstream, kernel, height, width, kernel_size, stride, groups):
    channels = upstream.shape[-1]
    out_height, pad_top = same_padding(height, kernel_size, stride)
    out_width, pad_left = same_padding(width, kernel_size, stride)
    # Input row s*y' + a takes tap u from output row y' + (a + pad - u) / s,
    # for the taps u where that division is exact.
    row_taps = _phase_taps(kernel_size, stride, pad_top)
    col_taps = _phase_taps(kernel_size, stride, pad_left)
    row_shifts = [shift for taps in row_taps for _, shift in taps]
    col_shifts = [shift for taps in col_taps for _, shift in taps]
    row_pad = (max(0, -min(row_shifts)), max(0, max(row_shifts)))
    col_pad = (max(0, -min(col_shifts)), max(0, max(col_shifts)))
    batch = tf.shape(upstream)[0]
    grouped = tf.reshape(upstream, [batch, out_height, out_width, groups, channels // groups])
    padding = [[0, 0], list(row_pad), list(col_pad), [0, 0], [0, 0]]
    grouped = tf.pad(grouped, padding)
    taps = tf.unstack(tf.pad(kernel[..., tf.newaxis], padding[:3] + [[0, 0]] * 3), axis=3)

    def shifted(tensor, row_shift, col_shift):
        row, col = row_pad[0] + row_shift, col_pad[0] + col_shift
        return tensor[:, row : row + out_height, col : col + out_width]

    phases = []
    for rows in row_taps:
        phase_row = []
        for cols in col_taps:
            terms = [
                shifted(grouped, row_shift, col_shift)
                * shifted(taps[u * kernel_size + v], row_shift, col_shift)
                for u, row_shift in rows
                for v, col_shift in cols
            ]
            phase_row.append(
                tf.add_n(terms) if terms else tf.zeros_like(grouped[:, :out_height, :out_width])
            )
        phases.append(tf.stack(phase_row, axis=3))  # (B, H', W', s, G, C/G)
    interleaved = tf.stack(phases, axis=2)  # (B, H', s, W', s, G, C/G)
    full = tf.reshape(interleaved, [batch, out_height * stride, out_width * stride, channels])
    return full[:, :height, :width]


def _phase_taps(kernel_size: int, stride: int, pad: int) -> list[list[tuple[int, int]]]:
    """Per phase a: the (tap, output shift) pairs that reach input index s*y' + a."""
    return [
        [
            (tap, (phase + pad - tap) // stride)
            for tap in range(kernel_size)
            if (phase + pad - tap) % stride == 0
        ]
        for phase in range(stride)
    ]
