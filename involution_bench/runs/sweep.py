"""Sweeps: the Cartesian product of config values, as one folder of runs.

`invbench sweep -c FILE --grid KEY=V1,V2 [--grid ...] [--repeat N]` trains
every combination of the grids' values (each `repeat` times, with seeds
seed, seed+1, ...). Everything here is planning and bookkeeping, without
TensorFlow:

- `plan_sweep` reads the grids (values as YAML: `3,5,7`, `"a,b",c`,
  `[1, 2],[3, 4]`) and validates every member's config before anything
  trains;
- a sweep lives in `ROOT/sweep-<stamp>-<name>/`, with `sweep.yaml` (the
  command, the grid, every member and its folder) written once. Each member
  trains into its own folder, `m<index>-<slug>/`, so parallel shards never
  write the same file;
- re-running the same sweep finds its folder again by the sweep's identity
  (a hash of what the command was given: the config file's contents, the
  overrides, the grid and the repeats; not of the resolved configs, which
  gain keys when invbench does), then skips completed members and resumes
  interrupted ones;
- `--shard I/N` takes the members whose index is I-1 modulo N: fixed,
  disjoint slices for the jobs of a scheduler (a SLURM array, several
  machines sharing a file system).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from involution_bench.config import (
    SAFE_LOADER,
    ExperimentConfig,
    config_to_dict,
    load_config,
    matching_paths,
)
from involution_bench.config.packaged import find_config
from involution_bench.errors import ConfigError, InvbenchError
from involution_bench.runs.files import SWEEP_FILE
from involution_bench.runs.reader import find_runs, read_run
from involution_bench.runs.storage import ensure_root, timestamp, write_atomic


@dataclass(frozen=True)
class Member:
    """One run of the sweep: its grid values and seed, its config and its folder."""

    index: int
    values: dict[str, Any]  # swept key -> value
    config: ExperimentConfig

    @property
    def slug(self) -> str:
        """`m03-kernel_size=5-seed=43`: readable, and unique within the sweep."""
        parts = [f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in self.values.items()]
        text = "-".join([f"m{self.index:02d}", *parts, f"seed={self.config.seed}"])
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)[:120]


@dataclass(frozen=True)
class SweepPlan:
    config_path: Path
    grid: dict[str, list[Any]]
    repeat: int
    members: list[Member]
    overrides: tuple[str, ...] = ()
    config_text: str = ""  # the config file as it was read

    @property
    def name(self) -> str:
        return self.members[0].config.name

    @property
    def identity(self) -> str:
        """Equal for the same command inputs, whatever the folder; stable across
        invbench versions that add config keys (a resume must find its sweep)."""
        inputs = {
            "config": yaml.safe_load(self.config_text),
            "overrides": sorted(self.overrides),
            "grid": self.grid,
            "repeat": self.repeat,
        }
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]


def parse_grid(text: str) -> tuple[str, list[Any]]:
    """`KEY=V1,V2,...` -> (KEY, [V1, V2, ...]), each value read as YAML."""
    key, sep, values_text = text.partition("=")
    if not sep or not key or not values_text:
        raise ConfigError("--grid", text, "must look like key.path=value1,value2,...")
    try:
        values = yaml.safe_load(f"[{values_text}]")
    except yaml.YAMLError:
        raise ConfigError("--grid", key, f"values {values_text!r} are not valid YAML") from None
    if not values:
        raise ConfigError("--grid", key, "needs at least one value")
    if len({json.dumps(value, sort_keys=True) for value in values}) != len(values):
        raise ConfigError("--grid", key, "lists a value twice")
    return key, values


def plan_sweep(
    config_path: Path, grids: list[str], repeat: int = 1, overrides: tuple[str, ...] = ()
) -> SweepPlan:
    """Every member of the sweep, each config validated (a bad one stops the sweep here)."""
    grid: dict[str, list[Any]] = {}
    for text in grids:
        key, values = parse_grid(text)
        if key in grid:
            raise ConfigError("--grid", key, "is given twice")
        grid[key] = values
    config_path = find_config(config_path)  # a file, or a packaged config's name
    base = load_config(config_path, overrides)
    resolved = config_to_dict(base)
    paths = {key: expand_key(resolved, key) for key in grid}
    members = []
    combinations = list(itertools.product(*grid.values()))
    for repetition in range(repeat):
        for combination in combinations:
            values = dict(zip(grid, combination, strict=True))
            swept = [
                f"{path}={json.dumps(value)}"
                for key, value in values.items()
                for path in paths[key]
            ]
            settings = [*overrides, *swept, f"seed={base.seed + repetition}"]
            members.append(Member(len(members), values, _member_config(config_path, settings)))
    text = Path(config_path).read_text(encoding="utf-8")  # load_config has checked it reads
    return SweepPlan(Path(config_path), grid, repeat, members, tuple(overrides), text)


def expand_key(resolved: Any, key: str) -> list[str]:
    """The config paths a grid key names: `*` stands for every list index or key
    where the rest of the path exists (`model.layers.*.residual.layers.*.involution.
    kernel_size` is every involution's kernel size inside residual blocks)."""
    if "*" not in key:
        return [key]
    found = matching_paths(resolved, key)
    if not found:
        raise ConfigError("--grid", key, "matches no key of the config")
    return found


def _member_config(config_path: Path, settings: list[str]) -> ExperimentConfig:
    try:
        return load_config(config_path, settings)
    except ConfigError as exc:
        if exc.source == "--set":  # the grid's keys arrive as overrides: say where they came from
            raise ConfigError("--grid", exc.key, exc.problem) from None
        raise


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`I/N` -> (I, N), 1 <= I <= N."""
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise InvbenchError("--shard", f"{text!r} must look like I/N with 1 <= I <= N, e.g. 2/4")
    return int(match.group(1)), int(match.group(2))


def shard_members(members: list[Member], shard: tuple[int, int] | None) -> list[Member]:
    if shard is None:
        return members
    index, count = shard
    return [member for member in members if member.index % count == index - 1]


def sweep_folder(
    plan: SweepPlan, root: Path, command: list[str] | None = None, name: str | None = None
) -> Path:
    """This sweep's folder under `root`: found again by its identity, else created
    (named `name` when given and free: a committed copy's name, so that the runs
    trained on another machine join the copy's folder when exported).

    Shards that start at once agree on one folder: the search and the
    creation happen under a lock file in `root`.
    """
    ensure_root(root)
    with open(root / f".sweep-{plan.identity}.lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = copied_sweep(root, plan)
        if existing is not None:
            return existing
        folder = root / (name or f"sweep-{timestamp()}-{plan.name}")
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = root / f"sweep-{timestamp()}-{plan.name}-{suffix}"
        folder.mkdir()
        write_atomic(folder / SWEEP_FILE, sweep_record(plan, command or sys.argv))
        return folder


def sweep_record(plan: SweepPlan, command: list[str]) -> str:
    record = {
        "identity": plan.identity,
        "command": command,
        "config": str(plan.config_path),
        "overrides": list(plan.overrides),
        "grid": plan.grid,
        "repeat": plan.repeat,
        "members": [
            {
                "index": member.index,
                "folder": member.slug,
                "seed": member.config.seed,
                "values": member.values,
            }
            for member in plan.members
        ],
    }
    return yaml.safe_dump(record, sort_keys=False, allow_unicode=True)


def member_run(folder: Path, member: Member) -> Path | None:
    """The member's newest run folder, if it has started one."""
    root = folder / member.slug
    if not root.is_dir():
        return None
    runs = find_runs(root)
    return runs[-1] if runs else None


def copied_sweep(root: Path, plan: SweepPlan) -> Path | None:
    """The sweep's folder below `root`, found by the sweep's identity: in a runs
    folder (`sweep_folder`) or in a copy of one (`invbench export`'s, such as a
    committed results/)."""
    for existing in sorted(root.glob(f"sweep-*-{plan.name}*/{SWEEP_FILE}")):
        if _read_record(existing).get("identity") == plan.identity:
            return existing.parent
    return None


def member_state(folder: Path, member: Member, copy: Path | None = None) -> tuple[str, Path | None]:
    """What to do with a member: "train", "skip" (completed or still running, or
    completed in `copy`, the sweep's exported copy), "resume" (interrupted or
    died) or "failed" (left for a person to look at)."""
    run_dir = member_run(folder, member)
    if run_dir is None:
        copied = member_run(copy, member) if copy is not None else None
        if copied is not None and read_run(copied).status == "completed":
            return "skip", copied  # trained on another machine; its results are kept
        return "train", None
    status = read_run(run_dir).status
    if status in ("completed", "running"):
        return "skip", run_dir
    if status in ("interrupted", "died"):
        return "resume", run_dir
    return "failed", run_dir


def swept_keys(folder: Path) -> list[str]:
    """The grid keys of the sweep folder `folder` is, or holds one level down."""
    records = [folder / SWEEP_FILE, *sorted(folder.glob(f"*/{SWEEP_FILE}"))]
    keys: dict[str, None] = {}
    for path in records:
        grid = _read_record(path).get("grid")
        keys.update(dict.fromkeys(grid if isinstance(grid, dict) else ()))
    return list(keys)


def member_of(run_dir: Path) -> tuple[Path, str] | None:
    """(sweep folder, member text) when `run_dir` is a sweep member's run, e.g.
    (`runs/sweep-...-rednet`, "m03 kernel_size=5 seed=43"); None otherwise."""
    member_dir = run_dir.parent
    member = _member_index(member_dir.parent / SWEEP_FILE).get(member_dir.name)
    if member is None:
        return None
    values = member.get("values") if isinstance(member.get("values"), dict) else {}
    parts = [f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in values.items()]
    text = " ".join([f"m{member.get('index', 0):02d}", *parts, f"seed={member.get('seed')}"])
    return member_dir.parent, text


@functools.lru_cache(maxsize=64)
def _member_index(path: Path) -> dict[str, dict[str, Any]]:
    """A sweep.yaml's members by folder, read once per sweep while listing its members
    (a sweep.yaml is written once)."""
    members = _read_record(path).get("members") or ()
    return {m["folder"]: m for m in members if isinstance(m, dict) and "folder" in m}


def _read_record(path: Path) -> dict[str, Any]:
    """A `sweep.yaml` as a mapping; empty where it is missing or damaged."""
    try:
        record = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return record if isinstance(record, dict) else {}


def _short(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")).strip('"')
