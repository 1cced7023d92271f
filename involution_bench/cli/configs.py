"""`invbench config` and `invbench diff`: what a config resolves to, and how two runs differ.

Neither imports TensorFlow: both only read YAML and run folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from involution_bench.analysis.rows import COLUMNS, current_schema, format_cell, make_row
from involution_bench.cli.app import Overrides, app, make_console
from involution_bench.config import dump_config, flatten_config, load_config
from involution_bench.errors import InvbenchError, RunError
from involution_bench.runs import load_run


@app.command("config")
def show_config(
    config: Annotated[
        Path | None,
        typer.Argument(metavar="FILE", help="Experiment YAML, or a packaged config's name."),
    ] = None,
    overrides: Overrides = None,
    list_packaged: Annotated[
        bool, typer.Option("--list", help="List the configs that ship with invbench.")
    ] = False,
) -> None:
    """Print the fully resolved config (defaults filled in, overrides applied) as YAML.

    Feeding the output back with `invbench train -c` trains the identical run;
    `invbench config NAME > mine.yaml` copies a packaged config out to edit.
    """
    if list_packaged:
        from involution_bench.config.packaged import PACKAGED, packaged_configs

        for name, path in packaged_configs().items():
            typer.echo(f"{name:24} {path.relative_to(PACKAGED)}")
        return
    if config is None:
        raise InvbenchError("config", "give a config FILE or NAME, or --list")
    typer.echo(dump_config(load_config(config, overrides or ())), nl=False)


@app.command()
def diff(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="A run folder.")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="Another run folder.")],
) -> None:
    """The config keys in which two runs differ, then their results side by side."""
    first, second = load_run(run_a), load_run(run_b)
    keys = config_differences(first.config, second.config, (run_a, run_b))
    console = make_console()
    if keys:
        table = Table("config key", str(run_a), str(run_b), title="config")
        for key, (value_a, value_b) in keys.items():
            table.add_row(key, str(value_a), str(value_b))
        console.print(table)
    else:
        console.print("configs: identical")
    results = Table("result", str(run_a), str(run_b), title="results")
    row_a, row_b = [make_row([first])], [make_row([second])]
    for column in COLUMNS[1:]:
        results.add_row(
            column.header,
            format_cell(row_a[0].values[column.key], column),
            format_cell(row_b[0].values[column.key], column),
        )
    console.print(results)


ABSENT = "(absent)"


def config_differences(
    config_a: dict[str, Any] | None, config_b: dict[str, Any] | None, paths: tuple[Path, Path]
) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (value in A, value in B), for every key whose values differ.

    Both configs are read as the current schema reads them, so a key added to
    invbench after a run was made does not show as a difference.
    """
    flat = []
    for config, path in zip((config_a, config_b), paths, strict=True):
        if config is None:
            raise RunError(str(path), "has no readable config.yaml to compare")
        flat.append(flatten_config(current_schema(config)))
    flat_a, flat_b = flat
    return {
        key: (flat_a.get(key, ABSENT), flat_b.get(key, ABSENT))
        for key in sorted(flat_a.keys() | flat_b.keys())
        if flat_a.get(key, ABSENT) != flat_b.get(key, ABSENT)
    }
