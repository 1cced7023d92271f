"""Experiment configs: the YAML schema, its validation, dotted keys and `--set` overrides.

- `sections`: the five sections and their fields;
- `layers`: layer entries checked against their kinds, and the shapes walked;
- `keys`: dotted keys (`train.epochs`, `model.layers.0.conv2d.filters`);
- `load`: reading, validating and writing a config.

Nothing here imports TensorFlow.
"""

from involution_bench.config.keys import config_values, flatten_config, matching_paths
from involution_bench.config.layers import (
    RESIDUAL,
    check_classes,
    kind_names,
    model_output,
)
from involution_bench.config.load import (
    SAFE_LOADER,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
)
from involution_bench.config.sections import (
    DEFAULT_INPUT_SHAPE,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    layer_pairs,
)

__all__ = [
    "DEFAULT_INPUT_SHAPE",
    "RESIDUAL",
    "SAFE_LOADER",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "TrainConfig",
    "check_classes",
    "config_from_dict",
    "config_to_dict",
    "config_values",
    "dump_config",
    "flatten_config",
    "kind_names",
    "layer_pairs",
    "load_config",
    "matching_paths",
    "model_output",
]
