"""Where a model's training step goes: each layer's forward and backward, timed alone.

`invbench bench model` says how long a whole step takes; this says which
layers that time is spent in, so that a gap between two models (RedNet and
its ResNet, say) can be traced to the layers that differ, and the layers
they share can be seen for what they cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from involution_bench.bench.timing import median_seconds
from involution_bench.config import ExperimentConfig
from involution_bench.models.build import build_model
from involution_bench.models.macs import layer_costs


@dataclass(frozen=True)
class LayerTiming:
    config: str
    layer: str
    kind: str  # the layer's class
    input_shape: tuple[int, ...]  # without the batch dimension
    milliseconds: float  # forward and backward (input and weight gradients), training mode
    macs_per_image: int  # forward multiply-adds, as `invbench info` counts them
    share: float  # of the sum over the timed layers

    def to_dict(self) -> dict:
        return {**asdict(self), "input_shape": list(self.input_shape)}


def bench_layers(config: ExperimentConfig, repeats: int = 10, warmup: int = 3) -> list[LayerTiming]:
    """Each single-input layer of the config's model, at its batch size and precision,
    timed alone (no XLA): layers of several inputs (an Add) are left out."""
    keras.mixed_precision.set_dtype_policy(config.train.precision)  # as training would
    model = build_model(config.layers, config.model.input_shape, config.name)
    macs = {cost.name: cost.macs for cost in layer_costs(model)}
    rng = np.random.default_rng(config.seed)
    rows = []
    for layer in model.layers:
        inputs = layer.input
        if isinstance(layer, keras.layers.InputLayer) or isinstance(inputs, list | tuple):
            continue
        shape = tuple(inputs.shape[1:])
        sample = rng.standard_normal((config.train.batch_size, *shape)).astype(np.float32)
        step = _forward_backward(layer, tf.constant(sample, inputs.dtype))
        seconds = median_seconds(step, repeats, warmup)
        rows.append((layer, shape, seconds * 1e3))
    total = sum(milliseconds for _, _, milliseconds in rows) or 1.0
    return [
        LayerTiming(
            config=config.name,
            layer=layer.name,
            kind=type(layer).__name__,
            input_shape=shape,
            milliseconds=milliseconds,
            macs_per_image=macs.get(layer.name, 0),
            share=milliseconds / total,
        )
        for layer, shape, milliseconds in rows
    ]


def _forward_backward(layer: keras.layers.Layer, inputs: tf.Tensor):
    @tf.function(jit_compile=False, reduce_retracing=True)
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.cast(layer(inputs, training=True), tf.float32))
        gradients = tape.gradient(loss, [inputs, *layer.trainable_weights])
        # One scalar that needs every gradient: waiting on it costs one read,
        # where reading each gradient back would add an op per tensor.
        return tf.add_n(
            [tf.cast(tf.reshape(gradient, [-1])[0], tf.float32) for gradient in gradients]
        )

    return lambda: step(inputs)
