"""`invbench train` and `invbench sweep`: new runs, resumed ones and sweeps, with live progress."""

from __future__ import annotations

import functools
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from involution_bench.cli.app import (
    Overrides,
    RunsDir,
    SweepRepeat,
    app,
    load_tensorflow,
    make_console,
)
from involution_bench.config import load_config
from involution_bench.errors import InvbenchError
from involution_bench.system.interrupts import signals_as_interrupts


@app.command()
def train(
    config: Annotated[
        list[Path] | None,
        typer.Option("--config", "-c", metavar="FILE", help="Experiment YAML; repeat for several."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN",
            help="Continue a stopped run from its last finished epoch "
            "(--set train.epochs=N may lengthen it).",
        ),
    ] = None,
    overrides: Overrides = None,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat",
            min=1,
            metavar="N",
            help="Train every config N times, with seeds seed, seed+1, ...",
        ),
    ] = 1,
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Plain lines, no live display (for logs).")
    ] = False,
) -> None:
    """Train each config's model into a new run folder, or resume a stopped run."""
    if bool(config) == bool(resume):
        raise InvbenchError("train", "give --config FILE (one or more) or --resume RUN")
    if resume and repeat != 1:
        raise InvbenchError("--repeat", "cannot be combined with --resume")
    configs = [load_config(path, overrides or ()) for path in config or ()]  # all checked first
    load_tensorflow()
    from involution_bench.train.loop import prepare_resume, prepare_run

    if resume:
        jobs = [functools.partial(prepare_resume, resume, overrides or ())]
    else:
        # Repeats interleave (A, B, A, B, ...) so a slow spell of the machine hits every config.
        jobs = [
            functools.partial(
                prepare_run, base.model_copy(update={"seed": base.seed + repetition}), runs_dir
            )
            for repetition in range(repeat)
            for base in configs
        ]
    console = make_console()
    with signals_as_interrupts():
        for prepare in jobs:
            fit_and_report(prepare(), console, quiet)


def fit_and_report(run, console: Console, quiet: bool) -> None:
    """Train a prepared run with a progress display, then print its result."""
    from involution_bench.train.callbacks import NonFiniteLoss
    from involution_bench.train.progress import EpochLines, LiveProgress

    experiment = run.config
    # A live display only makes sense on a terminal; logs get one line per epoch.
    live = console.is_terminal and not quiet
    display = LiveProgress(console, experiment.name) if live else EpochLines(console)
    try:
        summary = run.fit(callbacks=[display])
    except KeyboardInterrupt:
        epochs = run.writer.epochs_done
        typer.echo(
            f"interrupted: {run.run_dir} keeps {epochs} finished epoch(s); "
            f"resume with: invbench train --resume {run.run_dir}",
            err=True,
        )
        raise typer.Exit(130) from None
    except NonFiniteLoss as exc:
        typer.echo(f"error: {run.run_dir}: {exc}; the run is marked failed", err=True)
        raise typer.Exit(1) from None
    finally:
        if live:
            display.progress.stop()
    on = "on test" if summary.chosen_on_test else f"on {summary.validation_images:,} held out"
    tested = (
        f"; test accuracy {summary.test_accuracy:.4f} ({summary.test_model}), "
        f"last {summary.test_accuracy_last:.4f}"
        if summary.test_accuracy is not None
        else ""
    )
    console.print(
        f"{experiment.name} (seed {experiment.seed}): best val_accuracy "
        f"{summary.best_val_accuracy:.4f} (epoch {summary.best_epoch}, validated {on}), "
        f"final {summary.final_val_accuracy:.4f}{tested}, "
        f"{summary.total_parameters:,} parameters, "
        f"{summary.seconds_per_epoch:.1f} s/epoch"
    )
    console.print(f"run folder: {run.run_dir}")


@app.command()
def sweep(
    config: Annotated[
        Path, typer.Option("--config", "-c", metavar="FILE", help="Experiment YAML.")
    ],
    grids: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            metavar="KEY=V1,V2,...",
            help="Values of one config key, read as YAML (quote a value holding a comma); "
            "* in KEY matches every index or key. Repeat for a product of grids. "
            "Without any, the sweep is the config --repeat times (a seed study).",
        ),
    ] = None,
    overrides: Overrides = None,
    repeat: SweepRepeat = 1,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Train only the I-th of N fixed, disjoint slices (for job arrays).",
        ),
    ] = None,
    runs_dir: RunsDir = Path("runs"),
    done_in: Annotated[
        Path | None,
        typer.Option(
            "--done-in",
            metavar="DIR",
            help="A copy of run folders (invbench export's, e.g. a committed results/): "
            "members completed there are not trained again.",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Plain lines, no live display (for logs).")
    ] = False,
) -> None:
    """Train every combination of the grids into one sweep folder; run it again to go on."""
    from involution_bench.runs.sweep import (
        copied_sweep,
        member_state,
        parse_shard,
        plan_sweep,
        shard_members,
        sweep_folder,
    )

    chosen_shard = parse_shard(shard)
    plan = plan_sweep(config, grids or [], repeat, tuple(overrides or ()))  # every member checked
    copy = copied_sweep(done_in, plan) if done_in is not None and done_in.is_dir() else None
    command = ["invbench", *sys.argv[1:]]
    folder = sweep_folder(plan, runs_dir, command, name=copy.name if copy else None)
    states = [
        (member, *member_state(folder, member, copy))
        for member in shard_members(plan.members, chosen_shard)
    ]
    counts = Counter(action for _, action, _ in states)
    typer.echo(
        f"sweep {folder}: {len(plan.members)} members"
        + (f", shard {shard}: {len(states)}" if chosen_shard else "")
        + f"; {counts['skip']} done or running, {counts['resume']} to resume, "
        f"{counts['train']} to train, {counts['failed']} failed",
        err=True,
    )
    load_tensorflow()
    from involution_bench.train.loop import prepare_resume, prepare_run

    console, failures = make_console(), counts["failed"]
    with signals_as_interrupts():
        for member, action, run_dir in states:
            if action in ("skip", "failed"):
                continue
            if action == "resume":
                run = prepare_resume(run_dir)
            else:
                run = prepare_run(member.config, folder / member.slug)
            try:
                fit_and_report(run, console, quiet)
            except typer.Exit as exc:
                if exc.exit_code != 1:
                    raise
                failures += 1  # a failed member is marked; the others still train
    typer.echo(f"sweep folder: {folder} (compare it with: invbench compare {folder})", err=True)
    if failures:
        typer.echo(f"error: {failures} member(s) failed; see their summary.json", err=True)
        raise typer.Exit(1)
