"""Commands that look at configs, runs and data: info, plot, compare, runs, kernels, data."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from involution_bench.cli.app import (
    ConfigFiles,
    Overrides,
    RunsDir,
    app,
    friendly_errors,
    load_finished_epochs,
    load_runs,
    load_tensorflow,
    make_console,
    read_runs,
)
from involution_bench.config import load_config
from involution_bench.errors import InvbenchError
from involution_bench.runs import find_runs, newest_run


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
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="ROW",
            help="A row's name or a run folder: every other row gets its difference in best "
            "val acc, with a 95% interval (Welch) and a p-value.",
        ),
    ] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Show runs side by side: cost, accuracy and speed, with intervals over seeds and an
    overlaid figure."""
    from involution_bench.compare import comparison
    from involution_bench.plots import plot_comparison, plot_tradeoff
    from involution_bench.runs import create_unique_dir, ensure_root, timestamp
    from involution_bench.sweep import swept_keys
    from involution_bench.tables import (
        headers,
        table_cells,
        to_csv,
        to_json,
        to_markdown,
        write_tables,
    )

    # A sweep folder's grid keys become columns of their own.
    swept = list(dict.fromkeys(key for path in runs for key in swept_keys(path)))
    rows = comparison(load_runs(runs), group=group, baseline=baseline, swept_keys=swept)
    out_dir = ensure_root(out) if out else create_unique_dir(runs_dir, f"compare-{timestamp()}")
    written = [
        plot_comparison(rows, out_dir / "comparison.png"),
        plot_tradeoff(rows, out_dir / "tradeoff.png"),
        *write_tables(rows, out_dir),
    ]
    if output_format is OutputFormat.table:
        table = Table(*headers(rows))
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
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders of models with involution or attention layers; several are "
            "drawn side by side."
        ),
    ],
    images: Annotated[
        int, typer.Option("--images", "-n", min=1, max=100, help="Test images, one row each.")
    ] = 10,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="FILE", help="PNG to write (default: the first RUN/kernels.png)."
        ),
    ] = None,
) -> None:
    """Draw what each involution layer's kernels (their sum) and each attention layer (its
    weight on the centre) weigh, for the first test images."""
    loaded = [load_finished_epochs(run) for run in runs]
    load_tensorflow()
    from involution_bench.data import CLASS_NAMES, load_cifar10, resolve_data_dir, scaled
    from involution_bench.kernels import kernel_maps, load_trained_model
    from involution_bench.models import involution_op_layers
    from involution_bench.plots import kernel_figure, save_figure
    from involution_bench.runs import MODEL_FILE

    models = []
    for run in runs:
        model = load_trained_model(run / MODEL_FILE)
        if not involution_op_layers(model):
            raise InvbenchError(
                str(run / MODEL_FILE), "has no involution or attention layers, so no maps to draw"
            )
        models.append(model)
    data_dir = ((loaded[0].config or {}).get("data") or {}).get("dir")
    data = load_cifar10(resolve_data_dir(data_dir))
    inputs = scaled(data.x_test[:images])
    maps, guesses = [], []
    for run, model in zip(loaded, models, strict=True):
        prefix = f"{run.name}\n" if len(runs) > 1 else ""
        maps += [(prefix + title, values) for title, values in kernel_maps(model, inputs)]
        guesses.append(model.predict(inputs, verbose=0).argmax(axis=-1))
    captions = [
        f"{CLASS_NAMES[true]}\n(predicted {' / '.join(CLASS_NAMES[g[row]] for g in guesses)})"
        for row, true in enumerate(data.y_test[:images])
    ]
    figure = kernel_figure(data.x_test[:images], captions, maps)
    typer.echo(str(save_figure(figure, out or runs[0] / "kernels.png")))


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


class Checkpoint(str, Enum):
    best = "best"
    last = "last"


@app.command("eval")
@friendly_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder.")],
    checkpoint: Annotated[
        Checkpoint,
        typer.Option("--checkpoint", help="best.keras (best val accuracy) or model.keras (last)."),
    ] = Checkpoint.best,
) -> None:
    """Evaluate a run's saved model on the test set: accuracy, loss, per class, speed."""
    loaded = load_finished_epochs(run)
    load_tensorflow()
    from involution_bench.data import CLASS_NAMES
    from involution_bench.evaluate import eval_path, evaluate_run
    from involution_bench.plots import confusion_figure, save_figure
    from involution_bench.runs import write_json

    result = evaluate_run(loaded, checkpoint.value)
    table = Table("class", "accuracy", title=f"{loaded.name}: {result.model_file}")
    for name, accuracy in result.per_class_accuracy.items():
        table.add_row(name, f"{accuracy:.4f}")
    table.add_row("all", f"{result.accuracy:.4f}", end_section=True)
    console = make_console()
    console.print(table)
    console.print(
        f"accuracy {result.accuracy:.4f}, loss {result.loss:.4f} on {result.images:,} test "
        f"images; {result.images_per_second:,.0f} images/s"
    )
    write_json(eval_path(run), result.to_dict())
    title = f"{loaded.name} ({checkpoint.value}): accuracy {result.accuracy:.4f}"
    figure = confusion_figure(result.confusion_matrix, CLASS_NAMES, title)
    written = save_figure(figure, run / "confusion.png")
    typer.echo(f"wrote {eval_path(run)}, {written}", err=True)
