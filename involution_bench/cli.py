"""The `invbench` command line: parsing, friendly errors and Rich output over the library.

Exit codes: 0 success; 2 bad usage or input (config, paths, data), with one
line naming the file or key and the problem; 130 interrupted; 1 unexpected.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from involution_bench.config import load_config
from involution_bench.errors import InvbenchError
from involution_bench.runs import find_runs, load_run, newest_run

app = typer.Typer(
    name="invbench",
    help="Train and compare convolution and involution classifiers on CIFAR-10.",
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


def friendly_errors(command):
    """Bad input becomes one line and exit code 2; Ctrl-C becomes exit code 130."""

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

    return wrapper


@app.command()
@friendly_errors
def train(
    config: Annotated[
        list[Path],
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="Experiment YAML file; repeat to train several.",
        ),
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="Override a config key, e.g. train.epochs=1."
        ),
    ] = None,
    runs_dir: RunsDir = Path("runs"),
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Plain lines, no live display (for logs).")
    ] = False,
) -> None:
    """Train each config's model into a new run folder."""
    configs = [load_config(path, overrides or ()) for path in config]  # all checked first

    from involution_bench.progress import EpochLines, LiveProgress
    from involution_bench.training import prepare_run

    console = make_console()
    for experiment in configs:
        run = prepare_run(experiment, runs_dir)
        # A live display only makes sense on a terminal; logs get one line per epoch.
        live = console.is_terminal and not quiet
        display = LiveProgress(console, experiment.name) if live else EpochLines(console)
        try:
            summary = run.fit(callbacks=[display])
        except KeyboardInterrupt:
            epochs = run.recorder.summary["epochs_done"]
            typer.echo(f"interrupted: {run.run_dir} keeps {epochs} finished epoch(s)", err=True)
            raise typer.Exit(130) from None
        finally:
            if live:
                display.progress.stop()
        console.print(
            f"{experiment.name}: best val_accuracy {summary['best_val_accuracy']:.4f} "
            f"(epoch {summary['best_epoch']}), final {summary['final_val_accuracy']:.4f}, "
            f"{summary['parameters']['total']:,} parameters, "
            f"{summary['seconds_per_epoch']:.1f} s/epoch"
        )
        console.print(f"run folder: {run.run_dir}")


@app.command()
@friendly_errors
def plot(
    runs: Annotated[
        list[Path] | None, typer.Argument(help="Run folders (default: the newest run).")
    ] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Redraw loss.png and accuracy.png of runs."""
    from involution_bench.plots import plot_run

    for path in runs or [newest_run(runs_dir)]:
        run = load_run(path)
        if not run.epochs_done:
            raise InvbenchError(str(path), "has no finished epoch to plot yet")
        for figure in plot_run(run):
            typer.echo(str(figure))


@app.command()
@friendly_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders, or folders of runs.")],
) -> None:
    """Show runs side by side: parameters, accuracy and speed."""
    from involution_bench.compare import COLUMNS, comparison_rows

    paths = [found for path in runs for found in find_runs(path)]
    if not paths:
        raise InvbenchError(", ".join(map(str, runs)), "holds no runs")
    table = Table(*(column.header for column in COLUMNS))
    for cells in comparison_rows(load_run(path) for path in paths):
        table.add_row(*cells)
    make_console().print(table)


def make_console() -> Console:
    """Rich output that is never wrapped or squeezed when piped into a file or a log."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)
    return console
