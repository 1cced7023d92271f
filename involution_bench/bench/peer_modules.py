"""A config's network as PyTorch modules, computing what invbench's Keras model computes.

Imported only where PyTorch is installed (`bench.peer` checks first). The
peer follows Keras, not PyTorch's habits: TensorFlow's "same" padding (the
odd pixel after, not before), Keras' batch-norm epsilon and momentum, and a
flatten in channels-last order, so that `copy_weights` gives the same logits
(`tests/test_peer.py`). Involution and attention have no peer: they are
invbench's own.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from involution_bench.config import RESIDUAL, layer_pairs


class PeerUnsupported(ValueError):
    """A layer kind or argument the peer does not build; the message names it."""


class Residual(nn.Module):
    def __init__(self, branch: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.branch, self.shortcut = branch, shortcut

    def forward(self, x):
        return self.branch(x) + self.shortcut(x)


class ChannelsLastFlatten(nn.Module):
    def forward(self, x):  # Keras flattens (H, W, C): a copied dense layer expects it
        return x.permute(0, 2, 3, 1).flatten(1)


class SamePaddedConv(nn.Module):
    """A convolution with TensorFlow's asymmetric "same" padding."""

    def __init__(self, conv: nn.Conv2d, padding: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.pad, self.conv = nn.ZeroPad2d(padding), conv

    def forward(self, x):
        return self.conv(self.pad(x))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow's "same": (before, after, output size), an odd pixel after."""
    output = -(-size // stride)
    total = max((output - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, output


def build_peer(layers, input_shape) -> nn.Sequential:
    """The config's `model.layers` as modules taking NCHW images of `input_shape` (H, W, C)."""
    height, width, channels = input_shape
    modules, _ = _modules(layers, (channels, height, width))
    return nn.Sequential(*modules)


def _modules(layers, shape):
    modules: list[nn.Module] = []
    for kind, args in layers:
        channels, height, width = shape
        if kind == RESIDUAL:
            branch, out_shape = _modules(layer_pairs(args["layers"]), shape)
            skip = _modules(layer_pairs(args["shortcut"]), shape)[0] if args.get("shortcut") else []
            module, shape = Residual(nn.Sequential(*branch), nn.Sequential(*skip)), out_shape
        elif kind == "conv2d":
            _plain_activation(kind, args)
            module, size = _conv(channels, height, width, args)
            shape = (args["filters"], *size)
        elif kind == "batch_norm":  # Keras' momentum m is PyTorch's 1 - m
            module = nn.BatchNorm2d(channels, eps=args["epsilon"], momentum=1 - args["momentum"])
        elif kind == "relu":
            module = nn.ReLU()
        elif kind in ("max_pool", "avg_pool"):
            pool, stride = args["pool_size"], args.get("strides") or args["pool_size"]
            if args.get("padding", "valid") != "valid":
                raise PeerUnsupported(f"{kind} with padding {args['padding']!r}")
            module = (nn.MaxPool2d if kind == "max_pool" else nn.AvgPool2d)(pool, stride)
            shape = (channels, (height - pool) // stride + 1, (width - pool) // stride + 1)
        elif kind == "global_avg_pool":
            module, shape = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), (channels, 1, 1)
        elif kind == "flatten":
            module, shape = ChannelsLastFlatten(), (channels * height * width, 1, 1)
        elif kind == "dense":
            _plain_activation(kind, args)
            module = nn.Linear(channels, args["units"], bias=args["use_bias"])
            shape = (args["units"], 1, 1)
        elif kind == "dropout":
            module = nn.Dropout(args["rate"])
        else:
            raise PeerUnsupported(f"layer kind {kind!r}")
        weighted = module.conv if isinstance(module, SamePaddedConv) else module
        weighted.keras_name = args.get("name")  # for copy_weights
        modules.append(module)
        if args.get("activation") == "relu":  # conv2d and dense may end in one
            modules.append(nn.ReLU())
    return modules, shape


def _plain_activation(kind: str, args: dict) -> None:
    if args.get("activation") not in (None, "linear", "relu"):
        raise PeerUnsupported(f"{kind} with activation {args['activation']!r}")


def _conv(channels: int, height: int, width: int, args: dict):
    kernel, stride = args["kernel_size"], args["strides"]
    conv = nn.Conv2d(channels, args["filters"], kernel, stride=stride, bias=args["use_bias"])
    if args["padding"] == "valid":
        return conv, ((height - kernel) // stride + 1, (width - kernel) // stride + 1)
    top, bottom, out_height = same_padding(height, kernel, stride)
    left, right, out_width = same_padding(width, kernel, stride)
    if (top, left) == (bottom, right):
        conv.padding = (top, left)  # symmetric: the convolution pads by itself
        return conv, (out_height, out_width)
    return SamePaddedConv(conv, (left, right, top, bottom)), (out_height, out_width)


def copy_weights(keras_model, peer: nn.Module) -> None:
    """Load a Keras model's weights into its peer. Every layer with weights must be
    named in the config (`name:`), which is how the two are paired."""
    with torch.no_grad():
        for module in peer.modules():
            target, name = module, getattr(module, "keras_name", None)
            if not isinstance(target, nn.Conv2d | nn.BatchNorm2d | nn.Linear):
                continue
            if name is None:
                raise PeerUnsupported("copy_weights needs every layer with weights named")
            values = [np.asarray(weight) for weight in keras_model.get_layer(name).weights]
            if isinstance(target, nn.BatchNorm2d):
                tensors = [target.weight, target.bias, target.running_mean, target.running_var]
            else:  # Keras: (K, K, in, out) and (in, out); PyTorch: (out, in, K, K), (out, in)
                tensors = [target.weight] + ([target.bias] if target.bias is not None else [])
                order = (3, 2, 0, 1) if isinstance(target, nn.Conv2d) else (1, 0)
                values[0] = values[0].transpose(order)
            for tensor, value in zip(tensors, values, strict=True):
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def peer_optimizer(train, parameters) -> torch.optim.Optimizer:
    """The config's optimizer in PyTorch: SGD (momentum, Nesterov) or Adam, with its
    weight decay as PyTorch applies it (added to the gradient; Keras decouples it:
    the same work per step)."""
    decay = train.weight_decay or 0.0
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=train.learning_rate,
            momentum=train.momentum,
            nesterov=train.nesterov,
            weight_decay=decay,
        )
    return torch.optim.Adam(parameters, lr=train.learning_rate, weight_decay=decay)
