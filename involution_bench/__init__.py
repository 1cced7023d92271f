"""invbench: train and compare convolution, involution and local self-attention on CIFAR-10.

Importing the package is cheap: it does not import TensorFlow or Keras, so
the command line answers at once. The public layers, loss and optimizer are loaded on
first use (`from involution_bench import Involution`), and they register
themselves with Keras as soon as Keras is imported, before or after this
package. So a run's `model.keras` loads with `keras.saving.load_model` after
`import involution_bench`.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import wrapt

# Keep TensorFlow's C++ start-up chatter (not its errors) out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _public_names() -> dict[str, str]:
    """Public name -> the module that defines it (imported lazily: it needs TensorFlow).

    Every layer kind whose layer is invbench's own exports that layer, as its
    registry entry names it; the op and the loss are named here.
    """
    from involution_bench.kinds import LAYER_KINDS

    names = {"involution": "involution_bench.ops"}
    for kind in LAYER_KINDS.values():
        module, _, attribute = kind.builder.partition(":")
        if module.startswith(f"{__name__}."):
            names[attribute] = module
    names["SmoothedSparseCrossentropy"] = "involution_bench.train.losses"
    names["SGD"] = "involution_bench.train.optimizers"
    return names


_PUBLIC = _public_names()

__all__ = sorted(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


def _register_with_keras(_keras_module: Any) -> None:
    """Importing the defining modules runs their `register_keras_serializable`."""
    for module in dict.fromkeys(_PUBLIC.values()):
        importlib.import_module(module)


# Runs now if Keras is already imported, otherwise right after it is.
wrapt.register_post_import_hook(_register_with_keras, "keras")
