"""`invbench robustness`: shifts, CIFAR-10-C-style corruptions and calibration of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from involution_bench.cli.app import app, load_finished_epochs, load_tensorflow, make_console
from involution_bench.cli.compare import compact_table
from involution_bench.cli.models import Checkpoint
from involution_bench.errors import InvbenchError


def _number(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def refuse_to_shrink(run, limit: int | None, sets: int) -> None:
    """A quick look (`--limit`, `--no-corruptions`, no frost) must not silently replace
    a fuller evaluation of the same run."""
    report = run.robustness
    if not report:
        return
    images = report.get("images") or 0
    had = 5 * len((report.get("corruptions") or {}).get("names") or ())
    if (limit is not None and limit < images) or sets < had:
        raise InvbenchError(
            str(run.path / "robustness.json"),
            f"holds a fuller evaluation ({images:,} images, {had} corrupted sets); "
            "--force replaces it",
        )


@app.command()
def robustness(
    runs: Annotated[list[Path], typer.Argument(help="Run folders.")],
    checkpoint: Annotated[
        Checkpoint,
        typer.Option("--checkpoint", help="best.keras (the chosen model) or model.keras (last)."),
    ] = Checkpoint.best,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, metavar="N", help="Only the first N test images."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seeds every shift and corruption.")
    ] = 0,
    rotations: Annotated[
        bool,
        typer.Option("--rotations", help="Worst of k also rotates, uniform in [-30, 30] degrees."),
    ] = False,
    corruptions: Annotated[
        bool,
        typer.Option("--corruptions/--no-corruptions", help="The CIFAR-10-C-style sets."),
    ] = True,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a fuller robustness.json (more images or sets)."),
    ] = False,
    frost_dir: Annotated[
        Path | None,
        typer.Option(
            "--frost-dir",
            metavar="DIR",
            help="The frost photographs of hendrycks/robustness (frost1.png ... frost5.jpg); "
            "without them frost is left out.",
        ),
    ] = None,
) -> None:
    """Evaluate runs' saved models under shifts, corruptions and calibration; write
    RUN/robustness.json, robustness.png and reliability.png."""
    from involution_bench.robustness.corruptions.weather import FROST_FILES
    from involution_bench.robustness.suite import SuiteOptions

    if frost_dir is not None:
        missing = [name for name in FROST_FILES if not (frost_dir / name).is_file()]
        if missing:
            raise InvbenchError(str(frost_dir), f"has no {missing[0]} (frost needs all five)")
    loaded = [load_finished_epochs(run) for run in runs]
    sets = 0 if not corruptions else 5 * (15 if frost_dir is not None else 14)
    if not force:
        for run in loaded:
            refuse_to_shrink(run, limit, sets)
    options = SuiteOptions(
        seed=seed,
        max_rotation=30.0 if rotations else 0.0,
        frost_dir=frost_dir,
        skipped=() if corruptions else ("corruptions",),
    )
    load_tensorflow()
    from involution_bench.robustness.run import evaluate_run

    lines, written = [], []
    for run in loaded:
        report, files = evaluate_run(run, checkpoint.value, limit, options)
        written += files
        corrupted = report.get("corruptions") or {}
        consistency, worst = report["consistency"], report["worst_of_k"]
        seconds = report["seconds"]
        lines.append(
            [
                run.name,
                f"{report['images']:,}",
                _number(report["clean"]["accuracy"]),
                _number(corrupted.get("mean_accuracy")),
                _number(consistency["value"]),
                _number(worst["accuracy"]),
                _number(report["clean"]["ece"]),
                _number(corrupted.get("mean_ece")),
                f"{seconds['generation']:.0f}+{seconds['inference']:.0f}",
            ]
        )
    headers = [
        "run",
        "images",
        "clean acc",
        "corrupted acc",
        "consistency",
        f"worst of {options.worst_of}",
        "ECE",
        "ECE corrupted",
        "s (gen+infer)",
    ]
    console = make_console()
    console.print(compact_table(headers, lines))
    left_out = (report.get("corruptions") or {}).get("left_out")
    if left_out:
        console.print(
            f"left out: {', '.join(left_out)} (give --frost-dir with the reference's photographs)"
        )
    typer.echo(f"wrote {', '.join(str(path) for path in written)}", err=True)
