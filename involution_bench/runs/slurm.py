"""A sweep as a SLURM job array, and its comparison as a job that waits for it.

`array_scripts` writes two batch scripts into `SWEEP/slurm/`:

- `sweep.sbatch`: an array of N tasks; task i (0-based `SLURM_ARRAY_TASK_ID`)
  runs `invbench sweep ... --shard (i+1)/N` through `srun`, so that
  `scancel --signal=TERM` (or a preemption's signal) reaches it. The stopped
  member is marked interrupted and invbench exits 130; the script then
  requeues its own task (`scontrol requeue`), so the task never ends failed
  and the comparison's `afterok` still waits. Run again, the task resumes
  that member and trains the rest.
- `compare.sbatch`: `invbench compare SWEEP --out SWEEP/compare`, submitted
  with `--dependency=afterok:<array job>` so it runs once every task succeeded.

`submit` hands both to `sbatch`. Run folders live in the sweep folder, which
must be on a filesystem every node sees.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from involution_bench.errors import InvbenchError
from involution_bench.runs.storage import write_atomic

SLURM_DIR = "slurm"
SWEEP_SCRIPT = "sweep.sbatch"
COMPARE_SCRIPT = "compare.sbatch"


@dataclass(frozen=True)
class ArrayJob:
    sweep_script: Path
    compare_script: Path
    tasks: int


def _directives(options: Sequence[str]) -> str:
    return "".join(f"#SBATCH {option}\n" for option in options)


def array_scripts(
    folder: Path,
    invbench: str,
    sweep_arguments: Sequence[str],
    tasks: int,
    compare_arguments: Sequence[str] = (),
    sbatch_options: Sequence[str] = (),
) -> ArrayJob:
    """Write the array's and the comparison's batch scripts into `folder/slurm/`.

    `sweep_arguments` are `invbench sweep`'s, without `--shard`, with absolute
    paths; `sbatch_options` (`--partition=gpu`, `--time=4:00:00`) go into both.
    """
    if tasks < 1:
        raise InvbenchError("--tasks", f"must be at least 1, not {tasks}")
    slurm = folder / SLURM_DIR
    slurm.mkdir(parents=True, exist_ok=True)
    name = folder.name.removeprefix("sweep-")
    sweep = " ".join(shlex.quote(word) for word in [invbench, "sweep", *sweep_arguments])
    compare_words = [invbench, "compare", str(folder), "--out", str(folder / "compare")]
    compare = " ".join(shlex.quote(word) for word in [*compare_words, *compare_arguments])
    common = _directives(sbatch_options)
    sweep_script = slurm / SWEEP_SCRIPT
    write_atomic(
        sweep_script,
        "#!/bin/bash\n"
        f"#SBATCH --job-name=invbench-{name}\n"
        f"#SBATCH --array=0-{tasks - 1}\n"
        f"#SBATCH --output={slurm}/task-%a.out\n"
        "#SBATCH --open-mode=append\n"  # a requeued task's log goes on after the first's
        "#SBATCH --requeue\n"
        f"{common}"
        "# Task i trains shard i+1 of the sweep; run again (requeued) it resumes its members.\n"
        f'srun {sweep} --shard "$((SLURM_ARRAY_TASK_ID + 1))/{tasks}" --quiet\n'
        "status=$?\n"
        "# Stopped by a signal (preempted: exit 130), the task puts itself back in the\n"
        "# queue rather than end failed, so the comparison's afterok still waits for it.\n"
        'if [ "$status" -eq 130 ]; then\n'
        '  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" && exit 0\n'
        "fi\n"
        'exit "$status"\n',
    )
    compare_script = slurm / COMPARE_SCRIPT
    write_atomic(
        compare_script,
        "#!/bin/bash\n"
        f"#SBATCH --job-name=invbench-{name}-compare\n"
        f"#SBATCH --output={slurm}/compare.out\n"
        f"{common}"
        "# Submitted with --dependency=afterok:<the array job>: every shard has trained.\n"
        f"exec srun {compare}\n",
    )
    return ArrayJob(sweep_script, compare_script, tasks)


def sbatch(arguments: Sequence[str]) -> str:
    """`sbatch --parsable ...`: the job id (a cluster name after ';' is dropped)."""
    try:
        done = subprocess.run(
            ["sbatch", "--parsable", *arguments], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise InvbenchError("sbatch", "is not installed here: run on a SLURM login node") from None
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise InvbenchError("sbatch", reason[-1] if reason else f"exit code {done.returncode}")
    return done.stdout.strip().split(";")[0]


def submit(job: ArrayJob) -> tuple[str, str]:
    """Submit the array, then the comparison after it: (array job id, compare job id)."""
    array_id = sbatch([str(job.sweep_script)])
    compare_id = sbatch([f"--dependency=afterok:{array_id}", str(job.compare_script)])
    return array_id, compare_id
