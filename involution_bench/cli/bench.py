"""`invbench bench op|model|layers|cli|corruptions|runs`: timings, named with their CPU.

`bench epoch` (an epoch against its steps) is in `epoch.py`, `bench peer` (against
PyTorch) in `peer.py`."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer
from rich.table import Column, Table

from involution_bench.cli.app import (
    ConfigFiles,
    InvbenchTyper,
    Overrides,
    app,
    load_tensorflow,
    make_console,
)
from involution_bench.config import load_config
from involution_bench.errors import InvbenchError
from involution_bench.system.machine import cpu_description

bench_app = InvbenchTyper(
    help="Time the involution op's implementations, or whole models, against baselines.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Repeats = Annotated[int, typer.Option("--repeats", min=1, help="Timed repeats (median).")]
Rounds = Annotated[
    int,
    typer.Option(
        "--rounds",
        min=1,
        help="Rounds of --repeats steps; ratios are given for each (a noisy machine's spread).",
    ),
]


class OpDtype(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"


@bench_app.command("op")
def bench_op(
    shapes: Annotated[
        list[str] | None,
        typer.Option(
            "--shape",
            metavar="NAME",
            help="article, rednet, rednet-s2 (involution), attention or attention-wide "
            "(local self-attention); default all.",
        ),
    ] = None,
    repeats: Repeats = 10,
    dtype: Annotated[
        OpDtype, typer.Option("--dtype", help="The operands' dtype (bfloat16: as mixed precision).")
    ] = OpDtype.float32,
    as_json: JsonFlag = False,
) -> None:
    """Forward + backward time of each implementation of involution and of local
    self-attention's neighbourhood part, against the article's form."""
    load_tensorflow()
    from involution_bench.bench import op as bench

    unknown = sorted(set(shapes or ()) - set(bench.ALL_OP_SHAPES))
    if unknown:
        known = ", ".join(bench.ALL_OP_SHAPES)
        raise InvbenchError("--shape", f"unknown shape {unknown[0]!r} (known: {known})")
    chosen = [bench.ALL_OP_SHAPES[name] for name in shapes or bench.ALL_OP_SHAPES]
    timings = bench.bench_op(chosen, repeats=repeats, dtype=dtype.value)
    if as_json:
        echo_json(timings)
        return
    table = Table(
        "shape",
        "implementation",
        "ms (fwd+bwd)",
        "speedup",
        "GB/s",
        "memory-bound ms",
        caption=f"{dtype.value}; {machine_caption()}",
    )
    for index, timing in enumerate(timings):
        name = timing.implementation + (" (default)" if timing.default else "")
        last_of_shape = index + 1 == len(timings) or timings[index + 1].shape != timing.shape
        table.add_row(
            timing.shape,
            name,
            f"{timing.milliseconds:.1f}",
            f"{timing.speedup:.2f}",
            f"{timing.gigabytes_per_second:.1f}",
            f"{timing.bound_milliseconds:.1f}",
            end_section=last_of_shape,
        )
    make_console().print(table)


@bench_app.command("model")
def bench_model(
    config: ConfigFiles,
    overrides: Overrides = None,
    repeats: Repeats = 10,
    rounds: Rounds = 1,
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines",
            help="Time each config's baseline too; without, only invbench's models "
            "(faster, for ratios between configs).",
        ),
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Training-step time and inference speed of configs' models against their baselines."""
    configs = load_configs_then_tensorflow(config, overrides)
    from involution_bench.bench import model as bench

    # Every model in turns.
    timings = bench.bench_models(configs, repeats, rounds=rounds, baselines=baselines)
    if as_json:
        echo_json(timings)
        return
    names = [timing.config for timing in timings]
    table = Table(
        # A row's name is never cut short: the number columns wrap their headers instead.
        Column("config", no_wrap=True, min_width=max(map(len, names), default=6)),
        # Every cell whole, so the table narrows by its two-line headers alone:
        # it fits 100 columns with a 15-character config name.
        *(
            Column(header, no_wrap=True)
            for header in (
                "variant",
                "XLA",
                "step\nms",
                "speedup",
                "train\nimg/s",
                "infer\nimg/s",
                "MACs/\nimage",
                "train\nGMAC/s",
            )
        ),
        caption=machine_caption(),
    )
    baselines = {}  # spelled out under the table: they are too long for a column
    for timing in timings:
        if timing.variant != "invbench":
            baselines[timing.config] = timing.variant
        table.add_row(
            timing.config,
            "invbench" if timing.variant == "invbench" else "baseline",
            "on" if timing.jit_compile else "off",
            f"{timing.step_milliseconds:.1f}",
            "—" if timing.speedup is None else f"{timing.speedup:.2f}",
            f"{timing.train_images_per_second:,.0f}",
            f"{timing.inference_images_per_second:,.0f}",
            f"{timing.macs_per_image:,}",
            f"{timing.train_gmacs_per_second:.1f}",
        )
    console = make_console()
    console.print(table)
    for config_name, variant in baselines.items():
        console.print(f"{config_name}'s baseline: {variant}")
    for pair in bench.pair_ratios(timings):
        each = ", ".join(f"{ratio:.2f}" for ratio in pair.round_ratios)
        console.print(
            f"{pair.config} against {pair.first}: {pair.time_ratio:.2f}x the step time "
            f"for {pair.macs_ratio:.2f}x the multiply-adds"
            + (f" (rounds: {each})" if len(pair.round_ratios) > 1 else "")
        )


@bench_app.command("layers")
def bench_layers(
    config: ConfigFiles,
    overrides: Overrides = None,
    repeats: Repeats = 10,
    as_json: JsonFlag = False,
) -> None:
    """Where a training step goes: each layer's forward and backward, timed alone
    at the config's batch size and precision (no XLA), and the total by kind."""
    configs = load_configs_then_tensorflow(config, overrides)
    from involution_bench.bench.layers import bench_layers as time_layers

    timings = [timing for experiment in configs for timing in time_layers(experiment, repeats)]
    if as_json:
        echo_json(timings)
        return
    console = make_console()
    for experiment in configs:
        rows = [timing for timing in timings if timing.config == experiment.name]
        table = Table(
            # Cells whole (Keras' longest names, global_average_pooling2d, were cut).
            *(
                Column(header, no_wrap=True)
                for header in ("layer", "kind", "input", "MACs/\nimage", "ms\n(fwd+bwd)", "share")
            ),
            title=f"{experiment.name} ({experiment.train.precision}, batch "
            f"{experiment.train.batch_size})",
            caption=machine_caption(),
        )
        for timing in rows:
            table.add_row(
                timing.layer,
                timing.kind,
                "x".join(str(size) for size in timing.input_shape),
                f"{timing.macs_per_image:,}",
                f"{timing.milliseconds:.2f}",
                f"{timing.share:.0%}",
            )
        console.print(table)
        by_kind: dict[str, float] = {}
        for timing in rows:
            by_kind[timing.kind] = by_kind.get(timing.kind, 0.0) + timing.milliseconds
        total = sum(by_kind.values())
        summary = ", ".join(
            f"{kind} {milliseconds:.1f} ms ({milliseconds / total:.0%})"
            for kind, milliseconds in sorted(by_kind.items(), key=lambda item: -item[1])
        )
        console.print(f"{experiment.name}: {total:.1f} ms over its layers: {summary}")


@bench_app.command("cli")
def bench_cli(repeats: Repeats = 10, as_json: JsonFlag = False) -> None:
    """Start-up time of `invbench --help` and `invbench runs`, each in a fresh process."""
    from involution_bench.bench.startup import bench_startup

    timings = bench_startup(repeats=repeats)
    if as_json:
        echo_json(timings)
        return
    table = Table("command", "median s", "min s", "max s", "repeats", caption=machine_caption())
    for timing in timings:
        table.add_row(
            timing.command,
            f"{timing.median_seconds:.3f}",
            f"{timing.min_seconds:.3f}",
            f"{timing.max_seconds:.3f}",
            str(timing.repeats),
        )
    make_console().print(table)


@bench_app.command("corruptions")
def bench_corruptions(
    images: Annotated[
        int, typer.Option("--images", min=1, help="Images per set (the CIFAR test set's 10,000).")
    ] = 10_000,
    as_json: JsonFlag = False,
) -> None:
    """Seconds to generate each CIFAR-10-C-style corruption at each severity, uncached
    (what the first model's `invbench robustness` pays; later ones read the cache)."""
    from involution_bench.bench.corruptions import bench_generation

    timings = bench_generation(images)
    if as_json:
        echo_json(timings)
        return
    table = Table(
        "corruption",
        *(f"s{severity}" for severity in range(1, 6)),
        "total s",
        caption=f"{images:,} images of 32x32x3; {machine_caption()}",
    )
    for timing in timings:
        table.add_row(
            timing.corruption, *(f"{s:.1f}" for s in timing.seconds), f"{timing.total:.1f}"
        )
    table.add_row("all", *("" for _ in range(5)), f"{sum(t.total for t in timings):.1f}")
    make_console().print(table)


# (command, goal in seconds) on a folder of 10,000 finished runs (issue 23)
RUNS_COMMANDS = (
    (("runs", "{root}"), 2.0),
    (("compare", "{root}", "--out", "{out}/grouped"), 5.0),
    (("compare", "{root}", "--no-group", "--out", "{out}/single"), 30.0),
)


@bench_app.command("runs")
def bench_runs(
    count: Annotated[int, typer.Option("--count", min=1, help="Finished runs in the folder.")] = (
        10_000
    ),
    repeats: Repeats = 3,
    as_json: JsonFlag = False,
) -> None:
    """Seconds `runs`, `compare` and `compare --no-group` take on a folder of COUNT
    finished runs (config, summary, 20-epoch history each), each in a fresh process."""
    import tempfile
    from pathlib import Path

    from involution_bench.bench.startup import time_command
    from involution_bench.runs.fleet import write_fleet

    with tempfile.TemporaryDirectory(prefix="invbench-fleet-") as scratch:
        root, out = Path(scratch) / "runs", Path(scratch) / "out"
        write_fleet(root, count)
        timings = []
        for words, goal in RUNS_COMMANDS:
            arguments = tuple(word.format(root=root, out=out) for word in words)
            timing = time_command(arguments, repeats)
            shown = " ".join(words).format(root="RUNS", out="OUT")
            timings.append((shown, timing, goal))
    if as_json:
        machine = cpu_description()
        rows = [{**t.to_dict(), "command": c, "goal_seconds": g} for c, t, g in timings]
        typer.echo(json.dumps([{**row, "runs": count, "machine": machine} for row in rows]))
        return
    table = Table(
        "command", "median s", "min s", "max s", "goal s (10,000 runs)",
        caption=f"{count:,} finished runs; {machine_caption()}",
    )  # fmt: skip
    for command, timing, goal in timings:
        table.add_row(
            f"invbench {command}",
            f"{timing.median_seconds:.2f}",
            f"{timing.min_seconds:.2f}",
            f"{timing.max_seconds:.2f}",
            f"{goal:.0f}",
        )
    make_console().print(table)


def load_configs_then_tensorflow(paths, overrides) -> list:
    """The configs, read before TensorFlow loads so that a bad one fails at once."""
    configs = [load_config(path, overrides or ()) for path in paths]
    load_tensorflow()
    return configs


def echo_json(timings) -> None:
    """Timings as JSON rows, each naming the machine (figures mean little without it)."""
    machine = cpu_description()
    typer.echo(
        json.dumps([{**timing.to_dict(), "machine": machine} for timing in timings], indent=2)
    )


def machine_caption() -> str:
    """Benchmark figures mean little without the CPU they were measured on."""
    machine = cpu_description()
    return f"{machine['cpu']}, {machine['cpu_count']} cores; vector ISA: {machine['vector_isa']}"
