"""What generated kernels weigh: one map per involution or attention layer.

- Involution: at each position, the sum of the K*K values (over all groups)
  of the kernel the layer generated there, as the article draws them: large
  where the layer weighs its neighbourhood heavily.
- Local self-attention: its weights always sum to 1 over the neighbourhood,
  so their sum is no map. Drawn instead is the weight each position keeps on
  itself (the centre tap), averaged over the heads: near 1 where the layer
  looks only at the position itself, near 1/(K*K) where it spreads evenly.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from involution_bench.models import involution_op_layers, load_saved_model
from involution_bench.ops import Involution


def load_trained_model(path: Path) -> keras.Model:
    """A run's `model.keras`."""
    return load_saved_model(path, "no saved model (the run has not finished an epoch)")


def map_title(layer: keras.layers.Layer) -> str:
    """What a layer's map shows, for the figure."""
    if isinstance(layer, Involution):
        return f"{layer.name}\nkernel sum"
    return f"{layer.name}\ncentre weight"


def kernel_maps(model: keras.Model, images: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(title, `(N, H', W')` map) for each involution and attention layer, in model order."""
    layers = involution_op_layers(model)
    if not layers:
        return []
    probe = keras.Model(model.input, [layer.input for layer in layers])
    layer_inputs = probe(images, training=False)
    if not isinstance(layer_inputs, list | tuple):
        layer_inputs = [layer_inputs]
    maps = []
    for layer, inputs in zip(layers, layer_inputs, strict=True):
        if isinstance(layer, Involution):
            kernel = layer.generate_kernel(inputs, training=False)  # (N, H', W', K*K, G)
            values = keras.ops.sum(kernel, axis=(3, 4))
        else:
            weights = layer.attention_weights(inputs)  # (N, H, W, K*K, heads)
            values = keras.ops.mean(weights[:, :, :, layer.kernel_size**2 // 2], axis=-1)
        maps.append((map_title(layer), keras.ops.convert_to_numpy(values)))
    return maps
