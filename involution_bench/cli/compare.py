"""`invbench compare`, `invbench runs` and `invbench plot`: runs side by side, listed, redrawn.

None of them imports TensorFlow: they only read run folders.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from involution_bench.cli.app import (
    RunsDir,
    app,
    load_finished_epochs,
    load_runs,
    make_console,
    read_runs,
)
from involution_bench.runs import find_runs, newest_run

ON_TEST_NOTE = (
    "validated on test: chosen on the test set (the source article's protocol); its "
    "test accuracy is the best of its epochs' test scores, biased upward."
)


def compact_table(headers, lines, title: str | None = None) -> Table:
    """A table that keeps a 100-column terminal: one space between columns (the box's,
    no padding), no frame, and cells never cut (a header may wrap)."""
    table = Table(*headers, box=box.SIMPLE_HEAD, show_edge=False, padding=0, title=title)
    table.title_justify = "left"
    for column in table.columns:
        column.overflow = "fold"
    for cells in lines:
        table.add_row(*cells)
    return table


LONG_TABLE = 1000  # rows beyond which tables are printed as plain text, not through Rich


def print_table(console, headers, lines, title: str | None = None) -> None:
    """`compact_table` on the console; a long one (thousands of runs) as the same
    columns in plain text, which takes milliseconds where Rich takes seconds."""
    if len(lines) <= LONG_TABLE:
        console.print(compact_table(headers, lines, title=title))
        return
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *lines, strict=True)
    ]
    text = [title] if title else []
    text.append(" ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    text.append("\N{BOX DRAWINGS LIGHT HORIZONTAL}" * (sum(widths) + len(widths) - 1))
    text += [" ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    typer.echo("\n".join(text))


@app.command()
def plot(
    runs: Annotated[
        list[Path] | None, typer.Argument(help="Run folders (default: the newest run).")
    ] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Redraw loss.png and accuracy.png of runs."""
    from involution_bench.analysis.plots import plot_run

    for path in runs or [newest_run(runs_dir)]:
        for figure in plot_run(load_finished_epochs(path)):
            typer.echo(str(figure))


class OutputFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders, or folders of runs.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Folder for comparison.png, tradeoff.png and comparison.md/.csv/.json "
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
            help="A row's name or a run folder: every other row gets its difference in the "
            "metric (and in each robustness measure), with a 95% interval (Welch) and a "
            "p-value.",
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            metavar="KEYS",
            help="The table's columns, comma-separated: name, status, epochs, seeds, params, "
            "macs, validated, metric, test, test_last, best, ci, best_epoch, final, "
            "final_loss, seconds, images, corrupted, consistency, worst, ece, ece_corrupted, "
            "delta, delta_ci, p, verdict, n.",
        ),
    ] = None,
    metric: Annotated[
        str,
        typer.Option(
            "--metric",
            metavar="KEY",
            help="What rows are judged by (headline, interval, Δ, p, tradeoff.png): "
            "test_accuracy (the chosen model's, tested once; default), best_val_accuracy "
            "(the selection metric), final_val_accuracy, test_accuracy_last, or a robustness "
            "measure: corruption_accuracy, consistency, worst_of_k, ece, corruption_ece.",
        ),
    ] = "test_accuracy",
    wide: Annotated[
        bool, typer.Option("--wide", help="Every column, numbers in full (as the files hold).")
    ] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Show runs side by side: cost, accuracy and speed, with intervals over seeds and an
    overlaid figure."""
    from involution_bench.analysis.compare import comparison
    from involution_bench.analysis.plots import plot_comparison, plot_tradeoff
    from involution_bench.analysis.robustness import HEADERS as ROBUSTNESS_HEADERS
    from involution_bench.analysis.robustness import has_robustness, robustness_lines
    from involution_bench.analysis.robustness_plots import plot_robustness
    from involution_bench.analysis.rows import row_labels
    from involution_bench.analysis.tables import (
        headers,
        parse_columns,
        table_cells,
        terminal_table,
        to_csv,
        to_json,
        to_markdown,
        write_tables,
    )
    from involution_bench.runs import create_unique_dir, ensure_root, timestamp
    from involution_bench.runs.sweep import swept_keys

    chosen = parse_columns(columns) if columns else None
    # A sweep folder's grid keys become columns of their own.
    swept = list(dict.fromkeys(key for path in runs for key in swept_keys(path)))
    rows = comparison(
        load_runs(runs), group=group, baseline=baseline, swept_keys=swept, metric=metric
    )
    out_dir = ensure_root(out) if out else create_unique_dir(runs_dir, f"compare-{timestamp()}")
    written = [
        plot_comparison(rows, out_dir / "comparison.png"),
        plot_tradeoff(rows, out_dir / "tradeoff.png"),
        *write_tables(rows, out_dir),
    ]
    robust = has_robustness(rows)
    if robust:
        written += plot_robustness(rows, out_dir)
    if output_format is OutputFormat.table:
        if wide:
            header, cells = headers(rows), table_cells(rows)
        else:
            header, cells = terminal_table(rows, chosen)
        console = make_console()
        print_table(console, header, cells)
        if any(row.chosen_on_test for row in rows):
            console.print(ON_TEST_NOTE)
        if robust:
            lines = robustness_lines(rows, row_labels(rows, with_group_size=False))
            console.print()
            print_table(console, ROBUSTNESS_HEADERS, lines, title="robustness")
    else:
        render = {"markdown": to_markdown, "csv": to_csv, "json": to_json}[output_format.value]
        typer.echo(render(rows), nl=False)
    typer.echo(f"wrote {', '.join(str(path) for path in written)}", err=True)


@app.command()
def export(
    runs: Annotated[Path, typer.Argument(help="A run folder, or a folder of runs.")],
    to: Annotated[Path, typer.Option("--to", metavar="DIR", help="Where the copies go.")],
    completed: Annotated[
        bool, typer.Option("--completed", help="Only completed runs (not running or stopped).")
    ] = False,
) -> None:
    """Copy runs' small files (config, summary, history; sweep.yaml), no models, at the
    same relative paths: what results/ commits. `compare` reads the copies."""
    from involution_bench.runs.export import export_small_files

    written = export_small_files(runs, to, completed_only=completed)
    typer.echo(f"wrote {len(written)} files under {to}", err=True)


@app.command("runs")
def list_runs(
    root: Annotated[
        Path | None, typer.Argument(help="Folder to search (default: --runs-dir).")
    ] = None,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """List the runs below a folder, newest last; a sweep's members by their swept values."""
    from involution_bench.analysis.listing import LISTING_HEADERS, MEMBER_HEADERS, listing_groups

    root = root or runs_dir
    paths = find_runs(root)
    if not paths:
        typer.echo(f"no runs under {root}")
        return
    console = make_console()
    runs = read_runs(paths, history=False)  # summaries only: epochs done are in them
    for index, (title, lines) in enumerate(listing_groups(runs, root)):
        headers = LISTING_HEADERS if title is None else MEMBER_HEADERS
        if index:
            console.print()
        print_table(console, headers, lines, title=title)
