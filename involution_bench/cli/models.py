"""`invbench info`, `invbench eval` and `invbench kernels`: models, untrained and trained."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from involution_bench.cli.app import (
    Overrides,
    app,
    load_finished_epochs,
    load_tensorflow,
    make_console,
)
from involution_bench.config import check_classes, load_config
from involution_bench.data import dataset_class_names, scaled
from involution_bench.errors import InvbenchError
from involution_bench.runs import CONFUSION_PLOT, EVAL_FILE, KERNELS_PLOT, MODEL_FILE, RunFolder


@app.command()
def info(
    files: Annotated[
        list[Path] | None, typer.Argument(metavar="[FILE]...", help="Experiment YAMLs.")
    ] = None,
    config: Annotated[
        list[Path] | None,
        typer.Option("--config", "-c", metavar="FILE", help="Experiment YAML; repeat for several."),
    ] = None,
    overrides: Overrides = None,
) -> None:
    """Per-layer output shapes, parameters and multiply-accumulates of configs, untrained
    (`invbench info configs/equal-macs/*.yaml`, or `-c FILE` for each)."""
    paths = [*(files or ()), *(config or ())]
    if not paths:
        raise InvbenchError("info", "give one or more config files (FILE... or -c FILE)")
    configs = [load_config(path, overrides or ()) for path in paths]
    for experiment in configs:  # a folder dataset's classes are known once it is listed
        data = experiment.data
        check_classes(experiment, len(dataset_class_names(data.name, data.dir)))
    load_tensorflow()
    from involution_bench.analysis.rows import human_count
    from involution_bench.models import build_model, layer_costs, parameter_counts, total_macs

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
    from involution_bench.analysis.image_plots import kernel_figure
    from involution_bench.analysis.plots import png_bytes, save_figure
    from involution_bench.models.maps import kernel_maps, load_trained_model, mapped_layers
    from involution_bench.runs.dataset import run_data

    models = []
    for run in runs:
        model = load_trained_model(run / MODEL_FILE)
        if not mapped_layers(model):
            raise InvbenchError(
                str(run / MODEL_FILE), "has no involution or attention layers, so no maps to draw"
            )
        models.append(model)
    data = run_data(loaded[0])
    inputs = scaled(data.x_test[:images])
    maps, guesses = [], []
    for run, model in zip(loaded, models, strict=True):
        prefix = f"{run.name}\n" if len(runs) > 1 else ""
        maps += [(prefix + title, values) for title, values in kernel_maps(model, inputs)]
        guesses.append(model.predict(inputs, verbose=0).argmax(axis=-1))
    names = data.class_names
    captions = [
        f"{names[true]}\n(predicted {' / '.join(names[g[row]] for g in guesses)})"
        for row, true in enumerate(data.y_test[:images])
    ]
    figure = kernel_figure(data.x_test[:images], captions, maps)
    if out is None:
        written = RunFolder(runs[0]).write_bytes(KERNELS_PLOT, png_bytes(figure))
    else:
        written = save_figure(figure, out)
    typer.echo(str(written))


class Checkpoint(str, Enum):
    best = "best"
    last = "last"


@app.command("eval")
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder.")],
    checkpoint: Annotated[
        Checkpoint,
        typer.Option("--checkpoint", help="best.keras (best val accuracy) or model.keras (last)."),
    ] = Checkpoint.best,
) -> None:
    """Evaluate a run's saved model on its dataset's test set: accuracy, loss, per class,
    speed."""
    loaded = load_finished_epochs(run)
    load_tensorflow()
    from involution_bench.analysis.image_plots import confusion_figure
    from involution_bench.analysis.plots import png_bytes
    from involution_bench.train.evaluate import evaluate_run

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
    folder = RunFolder(run)
    written_eval = folder.write_json(EVAL_FILE, result.to_dict())
    title = f"{loaded.name} ({checkpoint.value}): accuracy {result.accuracy:.4f}"
    figure = confusion_figure(result.confusion_matrix, list(result.per_class_accuracy), title)
    written = folder.write_bytes(CONFUSION_PLOT, png_bytes(figure))
    typer.echo(f"wrote {written_eval}, {written}", err=True)
