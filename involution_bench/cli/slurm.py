"""`invbench slurm`: a sweep submitted as a SLURM job array, then its comparison."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from involution_bench.cli.app import Overrides, RunsDir, SweepRepeat, app
from involution_bench.errors import InvbenchError


def invbench_command() -> str:
    """This installation's `invbench`, by absolute path: the jobs run what submitted them."""
    beside = Path(sys.executable).with_name("invbench")
    if beside.is_file():
        return str(beside)
    return shutil.which("invbench") or "invbench"


@app.command()
def slurm(
    config: Annotated[
        Path, typer.Option("--config", "-c", metavar="FILE", help="Experiment YAML.")
    ],
    tasks: Annotated[
        int, typer.Option("--tasks", min=1, metavar="N", help="Array tasks (shards of the sweep).")
    ],
    grids: Annotated[
        list[str] | None,
        typer.Option("--grid", metavar="KEY=V1,V2,...", help="As for `invbench sweep`."),
    ] = None,
    overrides: Overrides = None,
    repeat: SweepRepeat = 1,
    sbatch_options: Annotated[
        list[str] | None,
        typer.Option(
            "--sbatch",
            metavar="OPTION",
            help="An sbatch option for both jobs, e.g. --sbatch=--partition=cpu "
            "--sbatch=--time=4:00:00 --sbatch=--cpus-per-task=8; repeat for several.",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", metavar="ROW", help="The comparison's baseline row."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Write the batch scripts and say how to submit them."),
    ] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Submit a sweep as a SLURM job array (task i trains shard i+1 of N) and its
    comparison as a job that runs after every task succeeded (afterok)."""
    from involution_bench.runs.slurm import array_scripts, submit
    from involution_bench.runs.sweep import plan_sweep, sweep_folder

    if not dry_run and shutil.which("sbatch") is None:
        raise InvbenchError("sbatch", "is not installed here: run on a SLURM login node")
    plan = plan_sweep(config, grids or [], repeat, tuple(overrides or ()))  # every member checked
    runs_dir = runs_dir.resolve()
    arguments = ["-c", str(plan.config_path.resolve()), "--runs-dir", str(runs_dir)]
    arguments += [f"--grid={grid}" for grid in grids or ()]
    arguments += [f"--set={override}" for override in overrides or ()]
    arguments += ["--repeat", str(repeat)] if repeat > 1 else []
    command = [invbench_command(), "sweep", *arguments]
    folder = sweep_folder(plan, runs_dir, command=command)
    job = array_scripts(
        folder,
        invbench_command(),
        arguments,
        tasks,
        compare_arguments=["--baseline", baseline] if baseline else [],
        sbatch_options=sbatch_options or [],
    )
    typer.echo(f"sweep {folder}: {len(plan.members)} members in {tasks} array tasks", err=True)
    if dry_run:
        typer.echo(f"array=$(sbatch --parsable {job.sweep_script})")
        typer.echo(f"sbatch --dependency=afterok:$array {job.compare_script}")
        return
    array_id, compare_id = submit(job)
    typer.echo(f"submitted array job {array_id} ({tasks} tasks) and comparison job {compare_id}")
    typer.echo(f"logs: {job.sweep_script.parent}/task-*.out; comparison: {folder}/compare/")
