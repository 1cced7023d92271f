"""The Typer app, its shared options, friendly errors and output helpers.

Every command is registered through `InvbenchTyper.command`, which applies
`friendly_errors`: that is the one place where bad input becomes one line and
exit code 2, Ctrl-C and SIGTERM exit code 130, and a failing disk one line
naming the path.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from involution_bench.errors import InvbenchError
from involution_bench.runs import Run, find_runs, load_run, read_run


def friendly_errors(command):
    """Bad input becomes one line and exit code 2; Ctrl-C becomes exit code 130; a
    disk or permission error becomes one line naming the path, and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InvbenchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            typer.echo(f"error: {exc.filename}: {exc.strerror or exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


class InvbenchTyper(typer.Typer):
    """A Typer app whose every command gets `friendly_errors`."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(function):
            register(friendly_errors(function))
            return function

        return decorator


app = InvbenchTyper(
    name="invbench",
    help="Train and compare convolution, involution and local self-attention image "
    "classifiers (CIFAR-10 by default).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

RunsDir = Annotated[
    Path,
    typer.Option(
        "--runs-dir",
        metavar="DIR",
        envvar="INVBENCH_RUNS_DIR",
        help="Root folder that holds the run folders.",
    ),
]

ConfigFiles = Annotated[
    list[Path],
    typer.Option("--config", "-c", metavar="FILE", help="Experiment YAML; repeat for several."),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. train.epochs=1."),
]
SweepRepeat = Annotated[
    int, typer.Option("--repeat", min=1, metavar="N", help="Every member N times, seeds seed+0..")
]


def load_tensorflow() -> None:
    """Import TensorFlow quietly, after the input is checked and before the library's
    own imports would load it noisily."""
    from involution_bench.system.quiet import import_tensorflow

    import_tensorflow()


def load_runs(paths: list[Path]) -> list[Run]:
    """Every run at or below each path, each once, in the order found."""
    found = [run for path in paths for run in find_runs(path)]
    if not found:
        raise InvbenchError(", ".join(map(str, paths)), "holds no runs")
    unique = dict.fromkeys(path.resolve() for path in found)
    return read_runs(unique, history=False)  # histories are read where a figure needs one


def read_runs(paths, history: bool = True) -> list[Run]:
    """Runs as read from disk; a damaged one is kept as `unreadable`, its reason on stderr.
    Without `history`, only summaries are read (as `invbench runs` needs)."""
    runs = [read_run(path, history) for path in paths]
    for run in runs:
        if run.problem:
            typer.echo(f"unreadable: {run.path}: {run.problem}", err=True)
    return runs


def load_finished_epochs(path: Path) -> Run:
    run = load_run(path)
    if not run.epochs_done:
        raise InvbenchError(str(path), "has no finished epoch yet")
    return run


def make_console() -> Console:
    """Rich output that is never wrapped or squeezed when piped into a file or a log
    (unless $COLUMNS sets a width, as a terminal would)."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = max(console.width, 240)  # wide tables stay whole in logs
    return console
