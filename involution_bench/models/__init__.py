"""Models: building a `keras.Model` from layer entries, its costs, and its maps.

- `build`: entries to a functional model, saved models back, parameters, XLA;
- `macs`: multiply-adds and parameters per layer, by each kind's rule;
- `maps`: the maps of generated kernels and attention, by each kind's rule.
"""

from involution_bench.models.build import (
    build_model,
    involution_op_layers,
    layer_kind,
    load_saved_model,
    parameter_counts,
    prepare_for_xla,
    resolve_jit_compile,
)
from involution_bench.models.macs import LayerCost, layer_costs, total_macs

__all__ = [
    "LayerCost",
    "build_model",
    "involution_op_layers",
    "layer_costs",
    "layer_kind",
    "load_saved_model",
    "parameter_counts",
    "prepare_for_xla",
    "resolve_jit_compile",
    "total_macs",
]
