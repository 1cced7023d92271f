"""invbench's training step beside PyTorch's for the same network: `invbench bench peer`.

Before trusting a TensorFlow tool's speed, a user asks what the framework
they would otherwise pick does with the same network. This times one
training step of the config's model three ways, alternating in one process:
invbench's (what `bench model` calls "invbench"), and PyTorch's peer
(`peer_modules`) in channels-last memory, its fastest CPU layout, and in
its default NCHW. Each uses all cores, and the config's batch size,
optimizer and label smoothing. PyTorch is not a dependency of invbench
(`pip install torch`); without it the command says so in one line.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np

from involution_bench.config import ExperimentConfig
from involution_bench.errors import InvbenchError

# Lets one framework's spinning worker threads go idle before the other's step.
SETTLE_SECONDS = 0.02


class PeerProblem(InvbenchError):
    """No PyTorch, or a config whose network has no PyTorch peer."""


@dataclass(frozen=True)
class PeerTiming:
    config: str
    framework: str  # "invbench", "pytorch channels_last", "pytorch nchw"
    version: str
    step_milliseconds: float  # median training step at the config's batch size
    against_invbench: float  # this step time over invbench's (the rounds' median)
    round_against_invbench: tuple[float, ...] = ()  # each round's ratio of medians

    def to_dict(self) -> dict:
        return asdict(self)


def peer_modules():
    """`bench.peer_modules`, or a PeerProblem saying that PyTorch is missing."""
    try:
        from involution_bench.bench import peer_modules
    except ImportError as exc:
        if exc.name != "torch":
            raise
        raise PeerProblem("torch", "PyTorch is not installed (pip install torch)") from None
    return peer_modules


def peer_model(config: ExperimentConfig):
    """The config's network as a PyTorch module (NCHW in), or a PeerProblem naming
    the file and what has no peer."""
    modules = peer_modules()
    try:
        return modules.build_peer(config.layers, config.model.input_shape)
    except modules.PeerUnsupported as exc:
        raise PeerProblem(config.source, f"{exc} has no PyTorch peer") from None


def bench_peer(
    config: ExperimentConfig, steps: int = 10, warmup: int = 3, rounds: int = 1
) -> list[PeerTiming]:
    """Median step times of invbench and of PyTorch (two layouts), alternating, in
    `rounds` rounds of `steps` turns; each ratio is the median of the rounds' ratios."""
    modules = peer_modules()
    peer_model(config)  # a config without a peer fails before anything is timed
    import torch

    from involution_bench.bench.model import compile_variant, invbench_model

    torch.set_num_threads(os.cpu_count() or 1)
    batch = config.train.batch_size
    rng = np.random.default_rng(config.seed)
    images = rng.random((batch, *config.model.input_shape), dtype=np.float32)
    ours, jit = invbench_model(config)
    labels = rng.integers(0, ours.output_shape[-1], batch).astype(np.int32)
    compile_variant(ours, config, jit, keras_own=False)
    steps_by_name = {"invbench": lambda: ours.train_on_batch(images, labels)}
    loss = torch.nn.CrossEntropyLoss(label_smoothing=config.train.label_smoothing or 0.0)
    targets = torch.from_numpy(labels.astype(np.int64))
    for layout, memory_format in (("channels_last", torch.channels_last), ("nchw", None)):
        torch.manual_seed(config.seed)
        model = peer_model(config).train()
        inputs = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        if memory_format is not None:
            model, inputs = (
                model.to(memory_format=memory_format),
                inputs.to(memory_format=memory_format),
            )
        optimizer = modules.peer_optimizer(config.train, model.parameters())

        def step(model=model, optimizer=optimizer, inputs=inputs):
            optimizer.zero_grad(set_to_none=True)
            loss(model(inputs), targets).backward()
            optimizer.step()

        steps_by_name[f"pytorch {layout}"] = step
    round_medians = [
        _alternating_medians(steps_by_name, steps, warmup if index == 0 else 0)
        for index in range(rounds)
    ]
    timings = []
    for name in steps_by_name:
        ratios = tuple(one[name] / one["invbench"] for one in round_medians)
        timings.append(
            PeerTiming(
                config=config.name,
                framework=name,
                version=_tensorflow_version()
                if name == "invbench"
                else f"PyTorch {torch.__version__}",
                step_milliseconds=statistics.median(one[name] for one in round_medians),
                against_invbench=statistics.median(ratios),
                round_against_invbench=ratios,
            )
        )
    return timings


def _alternating_medians(steps_by_name, steps: int, warmup: int) -> dict[str, float]:
    """Each framework's median step in ms, one step of each per turn, each after a
    short pause (SETTLE_SECONDS)."""
    seconds: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for repeat in range(warmup + steps):
        for name, step in steps_by_name.items():
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            step()
            if repeat >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) * 1e3 for name, values in seconds.items()}


def _tensorflow_version() -> str:
    import tensorflow as tf

    return f"TensorFlow {tf.__version__}"
