"""`invbench bench epoch`: a real epoch against its steps timed bare, in one process."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from involution_bench.cli.app import ConfigFiles, Overrides, make_console
from involution_bench.cli.bench import (
    JsonFlag,
    bench_app,
    load_configs_then_tensorflow,
    machine_caption,
)
from involution_bench.system.machine import cpu_description


@bench_app.command("epoch")
def bench_epoch(
    config: ConfigFiles,
    overrides: Overrides = None,
    epochs: Annotated[
        int, typer.Option("--epochs", min=2, help="Epochs to train; the first warms up.")
    ] = 3,
    steps: Annotated[
        int, typer.Option("--steps", min=1, help="Bare steps timed before and after each epoch.")
    ] = 20,
    as_json: JsonFlag = False,
) -> None:
    """A real epoch (pipeline, callbacks, validation, checkpoint) against its steps
    timed bare on a batch in memory, in one process: the epoch's overhead.
    `val s` is validation, `rest s` what follows it (checkpoints, history, progress),
    `step ms` the bare step and `bare s` the epoch's steps at that time."""
    configs = load_configs_then_tensorflow(config, [*(overrides or ()), f"train.epochs={epochs}"])
    from rich.console import Console

    from involution_bench.bench.epoch import bench_epoch as time_epochs
    from involution_bench.train.progress import EpochLines

    # Epoch lines, as a logged run prints them; on stderr, so that --json stays clean.
    def progress():
        return [EpochLines(Console(stderr=True, highlight=False))]

    results = [time_epochs(experiment, steps, progress) for experiment in configs]
    if as_json:
        machine = cpu_description()
        typer.echo(json.dumps([{**r.to_dict(), "machine": machine} for r in results], indent=2))
        return
    console = make_console()
    for result in results:
        table = Table(
            "epoch", "steps", "epoch s", "train s", "val s", "rest s",
            "step ms", "bare s", "epoch / bare", "train / bare",
            title=result.config, caption=machine_caption(),
        )  # fmt: skip
        for timing in result.epochs:
            table.add_row(
                str(timing.epoch),
                str(timing.steps),
                f"{timing.epoch_seconds:.2f}",
                f"{timing.train_seconds:.2f}",
                f"{timing.validation_seconds:.2f}",
                f"{timing.finish_seconds:.2f}",
                f"{timing.bare_step_milliseconds:.1f}",
                f"{timing.bare_seconds:.2f}",
                f"{timing.overhead:.3f}",
                f"{timing.train_overhead:.3f}",
            )
        console.print(table)
        console.print(
            f"{result.config}: an epoch takes {result.overhead:.3f}x its steps' bare time "
            f"(median over epochs 2-{len(result.epochs)})"
        )
