"""invbench: train and compare convolution and involution classifiers on CIFAR-10.

Importing the package registers the `Involution` layer and the smoothed loss
with Keras, so a run's `model.keras` loads with `keras.saving.load_model`
after `import involution_bench`.
"""

import os

# Keep TensorFlow's C++ start-up chatter (not its errors) out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from involution_bench.layers import Involution, involution
from involution_bench.losses import SmoothedSparseCrossentropy

__all__ = ["Involution", "SmoothedSparseCrossentropy", "involution"]
__version__ = "0.1.0"
