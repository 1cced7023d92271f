"""A run folder's small files, copied out: what `results/` commits of every published run.

For each run below a folder: `config.yaml`, `summary.json`, `history.json` (and
`robustness.json` where there is one), and each sweep's `sweep.yaml`, at the
same relative paths. No models: `compare` needs none, and they are large.
"""

from __future__ import annotations

from pathlib import Path

from involution_bench.runs.files import ROBUSTNESS_FILE, SMALL_FILES, SWEEP_FILE
from involution_bench.runs.reader import find_runs, read_run
from involution_bench.runs.storage import ensure_root, write_atomic


def export_small_files(source: Path, target: Path, completed_only: bool = False) -> list[Path]:
    """Copy the small files of every run at or below `source` into `target` (only the
    completed ones with `completed_only`: a study's results leave out what is still
    training or stopped)."""
    runs = find_runs(source)
    if completed_only:
        runs = [run for run in runs if read_run(run, history=False).status == "completed"]
    base = source if source.is_dir() and runs != [source] else source.parent
    written = []
    sweeps = {run.parent.parent for run in runs if (run.parent.parent / SWEEP_FILE).is_file()}
    files = [run / name for run in runs for name in (*SMALL_FILES, ROBUSTNESS_FILE)]
    files += [sweep / SWEEP_FILE for sweep in sweeps]
    for path in sorted(files):
        if not path.is_file():
            continue
        destination = target / path.relative_to(base)
        ensure_root(destination.parent)
        write_atomic(destination, path.read_bytes())
        written.append(destination)
    return written
