"""Timing the involution op's implementations and whole models, side by side.

Every figure is a median over repeats after warm-up, measured in the same
process as its baseline, so ratios hold even on a noisy machine. The
baseline is the article's formulation (`article_involution`, kept here as
the source article wrote it): `tf.image.extract_patches`, which materializes
a tensor K*K times the size of the input, then a multiply and a sum.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from involution_bench.attention_bench import ATTENTION_SHAPES
from involution_bench.config import ExperimentConfig
from involution_bench.flops import layer_costs, total_macs
from involution_bench.models import build_model, involution_layers, resolve_jit_compile
from involution_bench.ops.involution import auto_implementation, involution
from involution_bench.ops.involution_layer import Involution
from involution_bench.ops.native import native_ops

FLOAT_BYTES = 4


def article_involution(
    inputs: tf.Tensor, kernel: tf.Tensor, kernel_size: int, stride: int = 1, groups: int = 1
) -> tf.Tensor:
    """The source article's computation, with the official (contiguous) channel groups."""
    channels = inputs.shape[-1]
    patches = tf.image.extract_patches(
        images=inputs,
        sizes=[1, kernel_size, kernel_size, 1],
        strides=[1, stride, stride, 1],
        rates=[1, 1, 1, 1],
        padding="SAME",
    )  # (B, H', W', K*K*C)
    shape = tf.shape(patches)
    patches = tf.reshape(
        patches, [shape[0], shape[1], shape[2], kernel_size**2, groups, channels // groups]
    )
    output = tf.reduce_sum(kernel[..., tf.newaxis] * patches, axis=3)
    return tf.reshape(output, [shape[0], shape[1], shape[2], channels])


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


def median_seconds(run: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        _wait(run())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _wait(run())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes per second of a large copy (read + write), the machine's streaming speed."""
    source = np.ones(megabytes * 2**20 // FLOAT_BYTES, dtype=np.float32)
    target = np.empty_like(source)
    seconds = median_seconds(lambda: np.copyto(target, source), repeats, warmup=1)
    return 2 * source.nbytes / seconds


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


TRAINING_MAC_FACTOR = 3  # forward, input gradient, weight gradient


@dataclass(frozen=True)
class ModelTiming:
    config: str
    variant: str
    jit_compile: bool
    step_milliseconds: float  # one training step at the config's batch size
    train_images_per_second: float
    inference_images_per_second: float
    speedup: float  # the baseline's step time over this one's
    macs_per_image: int  # forward multiply-adds (as `invbench info` counts them)
    # Training multiply-adds per second: forward plus the two backward passes
    # (input and weight gradients), about 3x the forward count, per image.
    train_gmacs_per_second: float

    def to_dict(self) -> dict:
        return asdict(self)


class ArticleInvolution(Involution):
    """The `Involution` layer computing its op the article's way (the model baseline)."""

    def call(self, inputs, training=None):
        kernel = self.generate_kernel(inputs, training=training)
        return article_involution(inputs, kernel, self.kernel_size, self.stride, self.groups)


def model_variants(config: ExperimentConfig) -> list[tuple[str, keras.Model, bool]]:
    """(variant, model, jit_compile): the baseline first, then what invbench trains."""
    layers, shape = config.layers, config.model.input_shape
    keras.mixed_precision.set_dtype_policy(config.train.precision)  # as training would
    ours = build_model(layers, shape, config.name)
    jit = resolve_jit_compile(config.train.jit_compile, ours)
    if involution_layers(ours):  # residual blocks included
        builders = {"involution": ArticleInvolution}
        baseline = build_model(layers, shape, config.name, builders=builders)
        # The article trained without XLA; its extract_patches form gains little from it.
        return [("article formulation", baseline, False), ("invbench", ours, jit)]
    keras_default = build_model(layers, shape, config.name)
    return [("keras defaults", keras_default, None), ("invbench", ours, jit)]


def bench_model(config: ExperimentConfig, steps: int = 10, warmup: int = 3) -> list[ModelTiming]:
    """Training-step time and inference speed of a config's model against its baseline."""
    batch = config.train.batch_size
    rng = np.random.default_rng(config.seed)
    images = rng.random((batch, *config.model.input_shape), dtype=np.float32)
    labels = rng.integers(0, 10, batch).astype(np.int32)
    results = []
    for variant, model, jit in model_variants(config):
        macs = total_macs(layer_costs(model))
        # jit None: Keras' own default ("auto"), the baseline for plain models.
        model.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile="auto" if jit is None else jit,
        )
        step = median_seconds(lambda m=model: m.train_on_batch(images, labels), steps, warmup)
        infer = median_seconds(lambda m=model: m.predict_on_batch(images), steps, warmup)
        results.append(
            ModelTiming(
                config=config.name,
                variant=variant,
                jit_compile=bool(model.jit_compile),
                step_milliseconds=step * 1e3,
                train_images_per_second=batch / step,
                inference_images_per_second=batch / infer,
                speedup=0.0,
                macs_per_image=macs,
                train_gmacs_per_second=TRAINING_MAC_FACTOR * macs * batch / step / 1e9,
            )
        )
    baseline = results[0].step_milliseconds
    return [
        ModelTiming(**{**timing.to_dict(), "speedup": baseline / timing.step_milliseconds})
        for timing in results
    ]


def pair_ratios(timings: Sequence[ModelTiming]) -> list[tuple[str, str, float, float]]:
    """(config, first config, step-time ratio, MAC ratio) of each config's invbench
    variant against the first config's: does time follow the multiply-adds?"""
    ours = [timing for timing in timings if timing.variant == "invbench"]
    if len(ours) < 2:
        return []
    first = ours[0]
    return [
        (
            timing.config,
            first.config,
            timing.step_milliseconds / first.step_milliseconds,
            timing.macs_per_image / first.macs_per_image,
        )
        for timing in ours[1:]
    ]


def _with_implementation(name: str) -> Callable[..., tf.Tensor]:
    def op(inputs, kernel, kernel_size, stride, groups):
        return involution(inputs, kernel, kernel_size, stride, groups, implementation=name)

    return op


def _wait(result: object) -> None:
    """Block until a result is computed (eager ops can return before they finish).

    Reads back one value of each tensor, not all of it: copying a whole
    result into NumPy is work no training step does, and at RedNet's shape it
    took 16 ms (0.4 of the native kernel's forward and backward) on a 2-core Xeon.
    """
    for tensor in tf.nest.flatten(result):
        if isinstance(tensor, tf.Tensor):
            tf.reshape(tensor, [-1])[:1].numpy()
