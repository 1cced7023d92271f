"""`invbench data`: where a dataset comes from, and its images per split and class."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from involution_bench.cli.app import Overrides, app, make_console
from involution_bench.config import load_config
from involution_bench.errors import InvbenchError


@app.command()
def data(
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            metavar="NAME",
            help="A registered dataset: cifar10 (default), cifar100 or folder.",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="The dataset's folder: an offline CIFAR copy (default: $INVBENCH_DATA_DIR, "
            "else the Keras download), or a folder dataset's root.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", metavar="FILE", help="Take the dataset, folder and size from here."
        ),
    ] = None,
    overrides: Overrides = None,
    grid: Annotated[
        Path | None,
        typer.Option("--grid", metavar="FILE", help="Also draw 25 training images to this PNG."),
    ] = None,
) -> None:
    """Where a dataset comes from, and its images per split and class."""
    from involution_bench.analysis.image_plots import image_grid_figure
    from involution_bench.analysis.plots import save_figure
    from involution_bench.config import DEFAULT_INPUT_SHAPE
    from involution_bench.data import DATASETS, class_counts, load_dataset

    if config is not None:
        if dataset or data_dir:
            raise InvbenchError("--config", "takes the dataset from the config: drop --dataset")
        experiment = load_config(config, overrides or ())
        name, folder = experiment.data.name, experiment.data.dir
        shape = tuple(experiment.model.input_shape)
    else:
        name, folder, shape = dataset or "cifar10", data_dir, DEFAULT_INPUT_SHAPE
        if name not in DATASETS:
            known = ", ".join(DATASETS)
            raise InvbenchError("--dataset", f"unknown dataset {name!r} (known: {known})")
    loaded = load_dataset(name, str(folder) if folder else None, shape)
    console = make_console()
    console.print(f"{name}: {DATASETS[name].summary}")
    console.print(f"source: {loaded.source}")
    table = Table("class", "train", "test")
    classes = loaded.num_classes
    counts = zip(
        class_counts(loaded.y_train, classes), class_counts(loaded.y_test, classes), strict=True
    )
    for class_name, (train_count, test_count) in zip(loaded.class_names, counts, strict=True):
        table.add_row(class_name, f"{train_count:,}", f"{test_count:,}")
    table.add_row("total", f"{len(loaded.y_train):,}", f"{len(loaded.y_test):,}")
    console.print(table)
    if grid:
        captions = [loaded.class_names[label] for label in loaded.y_train[:25]]
        typer.echo(str(save_figure(image_grid_figure(loaded.x_train[:25], captions), grid)))
