"""Timing the involution op's implementations side by side: `invbench bench op`.

The baseline is the article's formulation (`ops.article.article_involution`):
`tf.image.extract_patches`, which materializes a tensor K*K times the size of
the input, then a multiply and a sum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from involution_bench.bench.attention import ATTENTION_SHAPES
from involution_bench.bench.timing import FLOAT_BYTES, median_seconds, memory_bandwidth
from involution_bench.ops.article import article_involution
from involution_bench.ops.involution import auto_implementation, involution
from involution_bench.ops.native import native_ops


@dataclass(frozen=True)
class OpShape:
    """One benchmark case of the op: square images, TF "SAME" padding."""

    name: str
    batch: int
    size: int
    channels: int
    kernel_size: int
    groups: int
    stride: int

    @property
    def out_size(self) -> int:
        return -(-self.size // self.stride)

    def arrays(self, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Input, kernel and an upstream gradient, float32."""
        rng = np.random.default_rng(seed)
        out = (self.batch, self.out_size, self.out_size)
        return tuple(
            tf.constant(rng.standard_normal(shape, dtype=np.float32))
            for shape in (
                (self.batch, self.size, self.size, self.channels),
                (*out, self.kernel_size**2, self.groups),
                (*out, self.channels),
            )
        )

    def apply(self, op, operands) -> tf.Tensor:
        return op(*operands, self.kernel_size, self.stride, self.groups)

    def implementations(self, native: bool) -> list[tuple[str, object, bool]]:
        """(name, op, jit_compile): the article's form first, then invbench's paths."""
        found = [
            ("article", article_involution, False),
            ("slices", _with_implementation("slices"), False),
        ]
        if native:
            found.append(("native", _with_implementation("native"), False))
        return found

    def default_path(self, dtype=tf.float32) -> str:
        """What `Involution` runs with its defaults on this machine, in `dtype`."""
        return auto_implementation(dtype, self.channels // self.groups, self.kernel_size)

    def minimum_bytes(self, value_bytes: int = FLOAT_BYTES) -> int:
        """Bytes a forward plus backward pass must move at least.

        Forward reads x and the kernel and writes y; the input gradient reads
        dy and the kernel and writes dx; the kernel gradient reads dy and x
        and writes dk: three passes over each of x, kernel and y.
        """
        out_positions = self.batch * self.out_size**2
        values = (
            self.batch * self.size**2 * self.channels
            + out_positions * self.kernel_size**2 * self.groups
            + out_positions * self.channels
        )
        return 3 * values * value_bytes


OP_SHAPES = {
    shape.name: shape
    for shape in (
        OpShape("article", batch=256, size=32, channels=3, kernel_size=3, groups=1, stride=1),
        OpShape("rednet", batch=64, size=32, channels=64, kernel_size=7, groups=4, stride=1),
        OpShape("rednet-s2", batch=64, size=32, channels=64, kernel_size=7, groups=4, stride=2),
    )
}
# Every case `bench op` knows: involution's, then local self-attention's.
ALL_OP_SHAPES = {**OP_SHAPES, **ATTENTION_SHAPES}


@dataclass(frozen=True)
class OpTiming:
    shape: str
    implementation: str
    milliseconds: float  # median forward + backward
    speedup: float  # the article's time over this one's
    gigabytes_per_second: float  # minimum bytes moved over the time
    bound_milliseconds: float  # the minimum bytes at the measured memory bandwidth
    default: bool  # the path invbench takes by default
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return asdict(self)


def forward_backward(op, jit_compile: bool, shape, dtype=tf.float32) -> Callable[[], object]:
    """A compiled callable running `op` on `shape`'s fixed data in `dtype`, and all its
    gradients."""
    *operands, upstream = (tf.cast(array, dtype) for array in shape.arrays())

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(operands, upstream):
        with tf.GradientTape() as tape:
            tape.watch(operands)
            output = shape.apply(op, operands)
        return tape.gradient(output, operands, output_gradients=upstream)

    return lambda: step(operands, upstream)


def bench_op(
    shapes: Sequence, repeats: int = 10, warmup: int = 3, dtype: str = "float32"
) -> list[OpTiming]:
    """Forward + backward time of every implementation on every shape (involution's
    `OpShape` or attention's `AttentionShape`), in `dtype` (float32 or bfloat16)."""
    bandwidth = memory_bandwidth()
    native = native_ops() is not None
    value_bytes = tf.as_dtype(dtype).size
    timings = []
    for shape in shapes:
        seconds = {
            name: median_seconds(forward_backward(op, jit, shape, dtype), repeats, warmup)
            for name, op, jit in shape.implementations(native)
        }
        for name, value in seconds.items():
            timings.append(
                OpTiming(
                    shape=shape.name,
                    implementation=name,
                    milliseconds=value * 1e3,
                    speedup=seconds["article"] / value,
                    gigabytes_per_second=shape.minimum_bytes(value_bytes) / value / 1e9,
                    bound_milliseconds=shape.minimum_bytes(value_bytes) / bandwidth * 1e3,
                    default=name == shape.default_path(tf.as_dtype(dtype)),
                    dtype=dtype,
                )
            )
    return timings


def _with_implementation(name: str) -> Callable[..., tf.Tensor]:
    def op(inputs, kernel, kernel_size, stride, groups):
        return involution(inputs, kernel, kernel_size, stride, groups, implementation=name)

    return op
