"""The op library: involution (and its layer), independent of invbench's harness.

It knows nothing of configs, runs or the command line, so it can be used on
its own:

    from involution_bench.ops import Involution, involution

Implementations: `slices` (pure TensorFlow, XLA-compiled) and `native` (a
C++ CPU kernel built on first use by `ops.native`).
"""

from involution_bench.ops.involution import involution
from involution_bench.ops.involution_layer import Involution

__all__ = ["Involution", "involution"]
