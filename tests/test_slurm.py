"""`invbench slurm` on a real single-node SLURM cluster (`make slurm-check`): a sweep of
4 members in 2 array tasks, one task preempted and requeued, then the comparison.

Slow and needs root and the daemons, so it runs only with INVBENCH_SLURM_CHECK=1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config
from slurm_cluster import job_states, missing_programs, single_node_cluster, wait_for

from involution_bench.data import DATA_DIR_ENV

pytestmark = pytest.mark.skipif(
    os.environ.get("INVBENCH_SLURM_CHECK") != "1", reason="make slurm-check runs it"
)
EPOCHS = 30


def invbench(*words, env) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from involution_bench.cli import app; app()", *words]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def restarts(env, task: str) -> int:
    shown = subprocess.run(
        ["scontrol", "-o", "show", "job", task], env=env, capture_output=True, text=True
    )
    fields = dict(part.split("=", 1) for part in shown.stdout.split() if "=" in part)
    return int(fields.get("Restarts", 0))


def running_member(sweep: Path) -> Path | None:
    """A member's run folder that is mid-training: running, with a finished epoch."""
    for summary in sweep.glob("m*/*/summary.json"):
        try:
            record = json.loads(summary.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("status") == "running" and 2 <= record.get("epochs_done", 0) < EPOCHS - 5:
            return summary.parent
    return None


def test_a_sweep_as_a_job_array_survives_preemption(tmp_path, cifar_dir):
    if missing := missing_programs():
        pytest.fail(f"not installed: {', '.join(missing)} (make slurm-check installs them)")
    if os.geteuid() != 0:
        pytest.skip("the daemons run as root here")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config("tiny", epochs=EPOCHS, batch_size=8)))
    runs = tmp_path / "runs"
    with single_node_cluster(tmp_path / "cluster") as env:
        env = {**env, DATA_DIR_ENV: str(cifar_dir), "INVBENCH_CACHE_DIR": str(tmp_path / "c")}
        submitted = invbench(
            "slurm", "-c", str(config), "--grid", "train.learning_rate=0.001,0.003",
            "--repeat", "2", "--tasks", "2", "--runs-dir", str(runs), "--baseline",
            "learning_rate=0.001", env=env,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        found = re.search(r"array job (\d+) .* comparison job (\d+)", submitted.stdout)
        array_job, compare_job = found.groups()
        (sweep,) = runs.glob("sweep-*")
        assert (sweep / "slurm" / "sweep.sbatch").is_file()

        # Preempt the task that trains a member, once it is mid-way; then requeue it.
        member = wait_for(lambda: running_member(sweep), 240, "a member mid-training")
        index = int(member.parent.name[1:3])  # m00..m03: shard i+1 of 2 holds i, i+2
        task = f"{array_job}_{index % 2}"
        subprocess.run(["scancel", "--signal=TERM", task], env=env, check=True)
        wait_for(
            lambda: json.loads((member / "summary.json").read_text())["status"] == "interrupted",
            60,
            "the member to be marked interrupted",
        )
        # The task requeues itself (sweep.sbatch); SLURM holds a requeued job back for a
        # while before it may start again: let it start now.
        wait_for(lambda: restarts(env, task) >= 1, 60, "the preempted task to requeue itself")
        # Not at once: slurmd revokes the old run's credential, and a start within the
        # same second or so is refused ("Job credential revoked").
        time.sleep(5)
        subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], env=env)

        def finished():
            states = job_states(env, compare_job)
            return states.get(compare_job) in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")

        wait_for(finished, 300, "the comparison job", poll=1)
        assert job_states(env, compare_job)[compare_job] == "COMPLETED", (
            sweep / "slurm" / "compare.out"
        ).read_text()

    folders = sorted(sweep.glob("m*/*/summary.json"))
    assert len(folders) == 4 and len({path.parent.parent for path in folders}) == 4  # once each
    for summary_path in folders:
        summary = json.loads(summary_path.read_text())
        history = json.loads((summary_path.parent / "history.json").read_text())
        assert summary["status"] == "completed"
        assert len(history["val_accuracy"]) == EPOCHS  # every epoch once, none twice
        assert bool(summary["resumed"]) == (summary_path.parent == member)
    assert (sweep / "compare" / "comparison.md").is_file()
    log = (sweep / "slurm" / f"task-{index % 2}.out").read_text()
    assert "to resume" in log
