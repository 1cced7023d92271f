"""The `invbench` command line: parsing, friendly errors and Rich output over the library.

Exit codes: 0 success; 2 bad usage or input (config, paths, data), with one
line naming the file or key and the problem; 130 interrupted; 1 unexpected.

TensorFlow and Keras take seconds to import and print chatter when they do,
so nothing here imports them at module level: `--help` and the commands that
only read run folders (runs, compare, plot) never load them, and the
commands that do load them (`load_tensorflow`) through `quiet`, which keeps
their start-up lines off the terminal.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from involution_bench.config import load_config
from involution_bench.errors import InvbenchError
from involution_bench.machine import cpu_description
from involution_bench.runs import Run, find_runs, load_run, newest_run, read_run

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

ConfigFiles = Annotated[
    list[Path],
    typer.Option("--config", "-c", metavar="FILE", help="Experiment YAML; repeat for several."),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. train.epochs=1."),
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


def load_tensorflow() -> None:
    """Import TensorFlow quietly, after the input is checked and before the library's
    own imports would load it noisily."""
    from involution_bench.quiet import import_tensorflow

    import_tensorflow()


@app.command()
@friendly_errors
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
    from involution_bench.training import prepare_resume, prepare_run

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
    with terminate_as_interrupt():
        for prepare in jobs:
            fit_and_report(prepare(), console, quiet)


def fit_and_report(run, console: Console, quiet: bool) -> None:
    """Train a prepared run with a progress display, then print its result."""
    from involution_bench.progress import EpochLines, LiveProgress
    from involution_bench.training import NonFiniteLoss

    experiment = run.config
    # A live display only makes sense on a terminal; logs get one line per epoch.
    live = console.is_terminal and not quiet
    display = LiveProgress(console, experiment.name) if live else EpochLines(console)
    try:
        summary = run.fit(callbacks=[display])
    except KeyboardInterrupt:
        epochs = run.recorder.summary["epochs_done"]
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
    console.print(
        f"{experiment.name} (seed {experiment.seed}): best val_accuracy "
        f"{summary['best_val_accuracy']:.4f} (epoch {summary['best_epoch']}), "
        f"final {summary['final_val_accuracy']:.4f}, "
        f"{summary['parameters']['total']:,} parameters, "
        f"{summary['seconds_per_epoch']:.1f} s/epoch"
    )
    console.print(f"run folder: {run.run_dir}")


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (a killed job, a closed session) stops a run as cleanly as Ctrl-C."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
@friendly_errors
def info(config: ConfigFiles, overrides: Overrides = None) -> None:
    """Per-layer output shapes, parameters and multiply-accumulates of configs, untrained."""
    configs = [load_config(path, overrides or ()) for path in config]
    load_tensorflow()
    from involution_bench.flops import human_count, layer_costs, total_macs
    from involution_bench.models import build_model, parameter_counts

    console = make_console()
    for experiment in configs:
        model = build_model(experiment.layers, experiment.model.input_shape, experiment.name)
        costs = layer_costs(model)
        counts, macs = parameter_counts(model), total_macs(costs)
        table = Table("layer", "kind", "output shape", "params", "MACs", title=experiment.name)
        for cost in costs:
            shape = "x".join(map(str, cost.output_shape))
            table.add_row(cost.name, cost.kind, shape, f"{cost.parameters:,}", f"{cost.macs:,}")
        table.add_row("total", "", "", f"{counts['total']:,}", f"{macs:,}", end_section=True)
        console.print(table)
        console.print(
            f"{experiment.name}: {counts['total']:,} parameters ({counts['trainable']:,} "
            f"trainable), {macs:,} multiply-accumulates per image ({human_count(macs)})"
        )


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
        for figure in plot_run(load_finished_epochs(path)):
            typer.echo(str(figure))


class OutputFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


@app.command()
@friendly_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders, or folders of runs.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Folder for comparison.png/.md/.csv/.json "
            "(default: a new compare-<timestamp> folder under --runs-dir).",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="What to print on standard output.")
    ] = OutputFormat.table,
    group: Annotated[
        bool,
        typer.Option(
            "--group/--no-group", help="One row (mean ± std) for runs that differ only in seed."
        ),
    ] = True,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Show runs side by side: cost, accuracy and speed, with an overlaid figure."""
    from involution_bench.compare import (
        comparison,
        headers,
        table_cells,
        to_csv,
        to_json,
        to_markdown,
        write_tables,
    )
    from involution_bench.plots import plot_comparison
    from involution_bench.runs import create_unique_dir, ensure_root, timestamp

    rows = comparison(load_runs(runs), group=group)
    out_dir = ensure_root(out) if out else create_unique_dir(runs_dir, f"compare-{timestamp()}")
    written = [plot_comparison(rows, out_dir / "comparison.png"), *write_tables(rows, out_dir)]
    if output_format is OutputFormat.table:
        table = Table(*headers())
        for column in table.columns[:2]:
            column.no_wrap = True  # run names and statuses stay whole; headers wrap instead
        for cells in table_cells(rows):
            table.add_row(*cells)
        make_console().print(table)
    else:
        render = {"markdown": to_markdown, "csv": to_csv, "json": to_json}[output_format.value]
        typer.echo(render(rows), nl=False)
    typer.echo(f"wrote {', '.join(str(path) for path in written)}", err=True)


@app.command("runs")
@friendly_errors
def list_runs(
    root: Annotated[
        Path | None, typer.Argument(help="Folder to search (default: --runs-dir).")
    ] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """List the runs below a folder, newest last."""
    from involution_bench.compare import LISTING_HEADERS, listing_cells

    root = root or runs_dir
    paths = find_runs(root)
    if not paths:
        typer.echo(f"no runs under {root}")
        return
    table = Table(*LISTING_HEADERS)
    for cells in listing_cells(read_runs(paths), root):
        table.add_row(*cells)
    make_console().print(table)


@app.command()
@friendly_errors
def kernels(
    run: Annotated[Path, typer.Argument(help="A run folder of a model with involution layers.")],
    images: Annotated[
        int, typer.Option("--images", "-n", min=1, max=100, help="Test images, one row each.")
    ] = 10,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="PNG to write (default: RUN/kernels.png)."),
    ] = None,
) -> None:
    """Draw what each involution layer's kernels weigh, for the first test images."""
    loaded = load_finished_epochs(run)
    load_tensorflow()
    from involution_bench.data import CLASS_NAMES, load_cifar10, resolve_data_dir, scaled
    from involution_bench.kernels import kernel_maps, load_trained_model
    from involution_bench.models import involution_layers
    from involution_bench.plots import kernel_figure, save_figure
    from involution_bench.runs import MODEL_FILE

    model_path = run / MODEL_FILE
    model = load_trained_model(model_path)
    if not involution_layers(model):
        raise InvbenchError(str(model_path), "has no involution layers, so no kernels to draw")
    data_dir = ((loaded.config or {}).get("data") or {}).get("dir")
    data = load_cifar10(resolve_data_dir(data_dir))
    inputs = scaled(data.x_test[:images])
    maps = kernel_maps(model, inputs)
    predicted = model.predict(inputs, verbose=0).argmax(axis=-1)
    captions = [
        f"{CLASS_NAMES[true]}\n(predicted {CLASS_NAMES[guess]})"
        for true, guess in zip(data.y_test[:images], predicted, strict=True)
    ]
    figure = kernel_figure(data.x_test[:images], captions, maps)
    typer.echo(str(save_figure(figure, out or run / "kernels.png")))


@app.command()
@friendly_errors
def data(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Offline CIFAR-10 folder (default: $INVBENCH_DATA_DIR, else the Keras download).",
        ),
    ] = None,
    grid: Annotated[
        Path | None,
        typer.Option("--grid", metavar="FILE", help="Also draw 25 training images to this PNG."),
    ] = None,
) -> None:
    """Where CIFAR-10 comes from, and its images per split and class."""
    from involution_bench.data import CLASS_NAMES, class_counts, load_cifar10, resolve_data_dir
    from involution_bench.plots import image_grid_figure, save_figure

    dataset = load_cifar10(resolve_data_dir(str(data_dir) if data_dir else None))
    console = make_console()
    console.print(f"source: {dataset.source}")
    table = Table("class", "train", "test")
    counts = zip(class_counts(dataset.y_train), class_counts(dataset.y_test), strict=True)
    for name, (train_count, test_count) in zip(CLASS_NAMES, counts, strict=True):
        table.add_row(name, f"{train_count:,}", f"{test_count:,}")
    table.add_row("total", f"{len(dataset.y_train):,}", f"{len(dataset.y_test):,}")
    console.print(table)
    if grid:
        captions = [CLASS_NAMES[label] for label in dataset.y_train[:25]]
        typer.echo(str(save_figure(image_grid_figure(dataset.x_train[:25], captions), grid)))


bench_app = typer.Typer(
    help="Time the involution op's implementations, or whole models, against baselines.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Repeats = Annotated[int, typer.Option("--repeats", min=1, help="Timed repeats (median).")]


@bench_app.command("op")
@friendly_errors
def bench_op(
    shapes: Annotated[
        list[str] | None,
        typer.Option("--shape", metavar="NAME", help="article, rednet or rednet-s2 (default all)."),
    ] = None,
    repeats: Repeats = 10,
    as_json: JsonFlag = False,
) -> None:
    """Forward + backward time of each implementation, against the article's form."""
    load_tensorflow()
    from involution_bench import bench

    unknown = sorted(set(shapes or ()) - set(bench.OP_SHAPES))
    if unknown:
        known = ", ".join(bench.OP_SHAPES)
        raise InvbenchError("--shape", f"unknown shape {unknown[0]!r} (known: {known})")
    chosen = [bench.OP_SHAPES[name] for name in shapes or bench.OP_SHAPES]
    timings = bench.bench_op(chosen, repeats=repeats)
    if as_json:
        rows = [{**timing.to_dict(), "machine": cpu_description()} for timing in timings]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "shape",
        "implementation",
        "ms (fwd+bwd)",
        "speedup",
        "GB/s",
        "memory-bound ms",
        caption=machine_caption(),
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
@friendly_errors
def bench_model(
    config: ConfigFiles,
    overrides: Overrides = None,
    repeats: Repeats = 10,
    as_json: JsonFlag = False,
) -> None:
    """Training-step time and inference speed of configs' models against their baselines."""
    configs = [load_config(path, overrides or ()) for path in config]
    load_tensorflow()
    from involution_bench import bench

    timings = [
        timing for experiment in configs for timing in bench.bench_model(experiment, repeats)
    ]
    if as_json:
        rows = [{**timing.to_dict(), "machine": cpu_description()} for timing in timings]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "config",
        "variant",
        "XLA",
        "step ms",
        "speedup",
        "train img/s",
        "infer img/s",
        caption=machine_caption(),
    )
    for timing in timings:
        table.add_row(
            timing.config,
            timing.variant,
            "on" if timing.jit_compile else "off",
            f"{timing.step_milliseconds:.1f}",
            f"{timing.speedup:.2f}",
            f"{timing.train_images_per_second:,.0f}",
            f"{timing.inference_images_per_second:,.0f}",
        )
    make_console().print(table)


@bench_app.command("cli")
@friendly_errors
def bench_cli(repeats: Repeats = 10, as_json: JsonFlag = False) -> None:
    """Start-up time of `invbench --help` and `invbench runs`, each in a fresh process."""
    from involution_bench.startup import bench_startup

    timings = bench_startup(repeats=repeats)
    if as_json:
        rows = [{**timing.to_dict(), "machine": cpu_description()} for timing in timings]
        typer.echo(json.dumps(rows, indent=2))
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


def machine_caption() -> str:
    """Benchmark figures mean little without the CPU they were measured on."""
    machine = cpu_description()
    return f"{machine['cpu']}, {machine['cpu_count']} cores; vector ISA: {machine['vector_isa']}"


def load_runs(paths: list[Path]) -> list[Run]:
    """Every run at or below each path, each once, in the order found."""
    found = [run for path in paths for run in find_runs(path)]
    if not found:
        raise InvbenchError(", ".join(map(str, paths)), "holds no runs")
    unique = dict.fromkeys(path.resolve() for path in found)
    return read_runs(unique)


def read_runs(paths) -> list[Run]:
    """Runs as read from disk; a damaged one is kept as `unreadable`, its reason on stderr."""
    runs = [read_run(path) for path in paths]
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
    """Rich output that is never wrapped or squeezed when piped into a file or a log."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)
    return console
