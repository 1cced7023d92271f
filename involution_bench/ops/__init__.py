"""The op library: involution, its layer and local self-attention, apart from the harness.

It knows nothing of configs, runs or the command line, so it can be used on
its own:

    from involution_bench.ops import Involution, LocalSelfAttention, involution

Implementations: `slices` (pure TensorFlow, XLA-compiled) and `native` (a
C++ CPU kernel built on first use by `ops.native`).
"""

from involution_bench.ops.batch_norm import BatchNormalization
from involution_bench.ops.conv2d import Conv2D
from involution_bench.ops.involution import involution
from involution_bench.ops.involution_layer import Involution
from involution_bench.ops.local_attention import LocalSelfAttention

__all__ = ["BatchNormalization", "Conv2D", "Involution", "LocalSelfAttention", "involution"]
