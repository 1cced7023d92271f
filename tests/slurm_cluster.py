"""A single-node SLURM cluster on this machine, for `make slurm-check`.

munged, slurmctld and slurmd from Debian's packages (`slurm-wlm`, `munge`),
all on localhost, configured by a minimal `slurm.conf` in a temporary
folder, with their own munge key and socket, ports that are free, and no
cgroups or accounting. `SLURM_CONF` points the clients (sbatch, squeue,
scancel, scontrol) at it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager, suppress
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def missing_programs() -> list[str]:
    return [name for name in (*DAEMONS, "sbatch", "scontrol") if not shutil.which(name)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def slurm_conf(folder: Path, munge_socket: Path, cpus: int) -> str:
    return f"""\
ClusterName=invbench-check
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
SchedulerParameters=defer_batch=0
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=check Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def wait_for(condition, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def single_node_cluster(folder: Path, cpus: int = 2):
    """Start the three daemons; yield the environment the clients need; stop them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("state", "spool", "munge"):
        (folder / name).mkdir(exist_ok=True)
    munge = folder / "munge"
    key, munge_socket = munge / "munge.key", munge / "munge.socket"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
    os.chmod(key, 0o400)
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, munge_socket, cpus), encoding="utf-8")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    try:
        subprocess.run(
            [
                "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={munge_socket}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--log-file={munge / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}",
            ],
            check=True,
            capture_output=True,
        )
        started.append(munge / "munged.pid")
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
        started.append(folder / "slurmctld.pid")
        subprocess.run(["slurmd", "-f", str(conf), "-N", "localhost"], check=True, env=env)
        started.append(folder / "slurmd.pid")

        def node_idle():
            shown = subprocess.run(
                ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True
            )
            return shown.returncode == 0 and shown.stdout.strip() in ("idle", "mix", "alloc")

        wait_for(node_idle, 60, "the node to come up")
        yield env
    finally:
        for pid_file in reversed(started):
            with suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().strip()), 15)
        time.sleep(1)


def job_states(env, job: str) -> dict[str, str]:
    """Each array task's (or job's) state: {"12_0": "RUNNING", ...}."""
    shown = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%i %T"], env=env, capture_output=True, text=True
    )
    states = dict(line.split() for line in shown.stdout.splitlines() if line.strip())
    finished = subprocess.run(
        ["scontrol", "-o", "show", "job", job], env=env, capture_output=True, text=True
    )
    for line in finished.stdout.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        task = fields.get("ArrayTaskId")
        name = f"{fields.get('ArrayJobId')}_{task}" if task else fields.get("JobId")
        states.setdefault(name, fields.get("JobState", "?"))
    return states
