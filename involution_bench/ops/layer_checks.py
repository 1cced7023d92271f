"""What the involution and local self-attention layers share: argument checks and shapes."""

from __future__ import annotations

from involution_bench.ops.involution import IMPLEMENTATIONS


def check_arguments(layer: str, implementation: str, **positive: object) -> None:
    """ValueError naming the layer and argument unless each is a positive int,
    `kernel_size` is odd (an even window has no centre, and "SAME" padding
    would shift it), and `implementation` is one the op knows."""
    for arg, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{layer} {arg} must be a positive integer, got {value!r}")
    kernel_size = positive.get("kernel_size")
    if kernel_size is not None and kernel_size % 2 == 0:
        raise ValueError(f"{layer} kernel_size must be odd, got {kernel_size}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"{layer} implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
        )


def strided_shape(input_shape, stride: int) -> tuple:
    """(B, ceil(H/s), ceil(W/s), C): a same-padded strided layer keeping the channels."""
    batch, height, width, channels = input_shape

    def scaled(size):
        return None if size is None else -(-size // stride)

    return (batch, scaled(height), scaled(width), channels)
