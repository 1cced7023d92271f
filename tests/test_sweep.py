"""Sweeps: grids read as YAML, the product, shards, re-runs, and compare's columns."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import assert_one_line_error, tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATA_DIR_ENV
from involution_bench.errors import ConfigError, InvbenchError
from involution_bench.runs import find_runs, load_run
from involution_bench.runs.sweep import parse_grid, parse_shard, plan_sweep, shard_members

runner = CliRunner()
INVOLUTION_SIZES = "model.layers.*.residual.layers.*.involution.kernel_size"


@pytest.mark.parametrize(
    ("text", "key", "values"),
    [
        ("train.learning_rate=0.1,0.01", "train.learning_rate", [0.1, 0.01]),
        ('name="a,b",c', "name", ["a,b", "c"]),
        (
            "model.input_shape=[32, 32, 3],[16, 16, 3]",
            "model.input_shape",
            [[32, 32, 3], [16, 16, 3]],
        ),
        ("train.augment=true,false", "train.augment", [True, False]),
    ],
)
def test_grid_values_are_read_as_yaml(text, key, values):
    assert parse_grid(text) == (key, values)


@pytest.mark.parametrize("text", ["train.epochs", "=1,2", "train.epochs=1,1", "k=[1,"])
def test_a_malformed_grid_is_refused(text):
    with pytest.raises(ConfigError, match="--grid"):
        parse_grid(text)


def test_the_sweep_is_the_product_of_its_grids_times_its_repeats(write_config):
    path = write_config(tiny_config())
    plan = plan_sweep(path, ["train.learning_rate=0.1,0.01", "train.batch_size=16,32,64"], repeat=2)
    assert len(plan.members) == 2 * 3 * 2
    seen = {
        (m.config.train.learning_rate, m.config.train.batch_size, m.config.seed)
        for m in plan.members
    }
    assert seen == {(lr, b, s) for lr in (0.1, 0.01) for b in (16, 32, 64) for s in (7, 8)}
    assert [m.index for m in plan.members] == list(range(12))
    assert len({m.slug for m in plan.members}) == 12
    assert (
        plan.identity
        == plan_sweep(
            path, ["train.learning_rate=0.1,0.01", "train.batch_size=16,32,64"], repeat=2
        ).identity
    )


def test_without_a_grid_the_sweep_is_a_seed_study(write_config):
    plan = plan_sweep(write_config(tiny_config()), [], repeat=3)
    assert [member.slug for member in plan.members] == ["m00-seed=7", "m01-seed=8", "m02-seed=9"]
    assert plan.grid == {}


def test_a_star_in_a_key_sets_every_match():
    plan = plan_sweep("configs/rednet.yaml", [f"{INVOLUTION_SIZES}=3,5"])
    for member, size in zip(plan.members, (3, 5), strict=True):
        kernels = [
            args["kernel_size"]
            for kind, args in _walk(member.config.layers)
            if kind == "involution"
        ]
        assert kernels == [size] * 4


def _walk(pairs):
    for kind, args in pairs:
        if kind == "residual":
            yield from _walk([next(iter(entry.items())) for entry in args["layers"]])
        else:
            yield kind, args


def test_every_member_is_checked_before_anything_trains(write_config):
    path = write_config(tiny_config())
    with pytest.raises(ConfigError, match=r"model\.layers\.0\.involution\.kernal_size"):
        plan_sweep(path, ["model.layers.0.involution.kernal_size=3,5"])
    with pytest.raises(ConfigError, match="kernel_size: must be odd"):
        plan_sweep(path, ["model.layers.0.involution.kernel_size=3,4"])
    with pytest.raises(ConfigError, match="matches no key"):
        plan_sweep(path, ["model.layers.*.nothing=1,2"])


def test_shards_are_fixed_disjoint_and_cover_the_sweep(write_config):
    plan = plan_sweep(write_config(tiny_config()), ["train.batch_size=8,16,32,64,128"], repeat=2)
    shards = [shard_members(plan.members, (index, 3)) for index in (1, 2, 3)]
    indices = [member.index for shard in shards for member in shard]
    assert sorted(indices) == list(range(10))
    assert [m.index for m in shards[1]] == [1, 4, 7]
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "a/b", "3"):
        with pytest.raises(InvbenchError, match="--shard"):
            parse_shard(bad)


def sweep_command(path, runs_dir, *extra):
    return [
        "sweep", "-c", str(path), "--grid", "train.learning_rate=0.01,0.02",
        "--runs-dir", str(runs_dir), "-q", *extra,
    ]  # fmt: skip


def test_a_sweep_trains_its_members_and_a_rerun_goes_on_where_it_stopped(
    write_config, tmp_path, monkeypatch, cifar_dir
):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    path = write_config(tiny_config(epochs=2))
    runs_dir = tmp_path / "runs"
    first = runner.invoke(app, sweep_command(path, runs_dir))
    assert first.exit_code == 0, first.output
    (folder,) = runs_dir.glob("sweep-*-tiny")
    record = yaml.safe_load((folder / "sweep.yaml").read_text())
    assert record["grid"] == {"train.learning_rate": [0.01, 0.02]}
    assert [member["folder"] for member in record["members"]] == [
        "m00-learning_rate=0.01-seed=7",
        "m01-learning_rate=0.02-seed=7",
    ]
    runs = [load_run(run) for run in find_runs(folder)]
    assert [run.status for run in runs] == ["completed", "completed"]

    # Member 0 stopped after its first epoch, as a killed job leaves it.
    stopped = find_runs(folder / "m00-learning_rate=0.01-seed=7")[0]
    summary = json.loads((stopped / "summary.json").read_text())
    history = json.loads((stopped / "history.json").read_text())
    (stopped / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (stopped / "history.json").write_text(json.dumps({k: v[:1] for k, v in history.items()}))
    (stopped / "checkpoints").mkdir()
    (stopped / "model.keras").rename(stopped / "checkpoints" / "epoch-0001.keras")

    again = runner.invoke(app, sweep_command(path, runs_dir))
    assert again.exit_code == 0, again.output
    assert "1 done or running, 1 to resume, 0 to train" in again.stderr
    assert list(runs_dir.glob("sweep-*")) == [folder]  # the same sweep, found again
    assert len(find_runs(folder)) == 2  # resumed in place, nothing trained twice
    resumed = load_run(stopped)
    assert resumed.status == "completed" and resumed.epochs_done == 2
    assert [entry["from_epoch"] for entry in resumed.summary.resumed] == [1]

    done = runner.invoke(app, sweep_command(path, runs_dir))
    assert "2 done or running, 0 to resume, 0 to train" in done.stderr

    compared = runner.invoke(
        app, ["compare", str(folder), "--out", str(tmp_path / "out"), "-f", "json"]
    )
    assert compared.exit_code == 0, compared.output
    rows = json.loads(compared.stdout)
    assert [row["swept"] for row in rows] == [
        {"train.learning_rate": 0.01},
        {"train.learning_rate": 0.02},
    ]
    table = runner.invoke(app, ["compare", str(folder), "--out", str(tmp_path / "out")])
    assert "learning_rate" in table.stdout


def test_a_shard_trains_only_its_slice(write_config, tmp_path, monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    path = write_config(tiny_config(epochs=1))
    result = runner.invoke(app, sweep_command(path, tmp_path / "runs", "--shard", "2/2"))
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs").glob("sweep-*")
    assert [run.parent.name for run in find_runs(folder)] == ["m01-learning_rate=0.02-seed=7"]


def test_members_completed_in_a_committed_copy_are_not_trained_again(
    write_config, tmp_path, monkeypatch, cifar_dir
):
    # Shard 2 trained on one machine and its small files were exported (what
    # results/ commits); a new machine, with no run folders, trains only shard 1.
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    path = write_config(tiny_config(epochs=1))
    first = runner.invoke(app, sweep_command(path, tmp_path / "old", "--shard", "2/2"))
    assert first.exit_code == 0, first.output
    exported = runner.invoke(app, ["export", str(tmp_path / "old"), "--to", str(tmp_path / "copy")])
    assert exported.exit_code == 0, exported.output

    fresh = tmp_path / "new"
    again = runner.invoke(app, sweep_command(path, fresh, "--done-in", str(tmp_path / "copy")))
    assert again.exit_code == 0, again.output
    assert "1 done or running, 0 to resume, 1 to train" in again.stderr
    (folder,) = fresh.glob("sweep-*")
    assert [run.parent.name for run in find_runs(folder)] == ["m00-learning_rate=0.01-seed=7"]
    (copied,) = (tmp_path / "copy").glob("sweep-*")
    assert folder.name == copied.name  # exported again, the new runs join the copy's folder

    # A different sweep (another repeat count) is not the copy's: it trains everything.
    other = runner.invoke(
        app,
        sweep_command(path, tmp_path / "other", "--repeat", "1", "--set", "train.epochs=1",
                      "--done-in", str(tmp_path / "copy")),
    )  # fmt: skip
    assert other.exit_code == 0, other.output
    assert "0 done or running, 0 to resume, 2 to train" in other.stderr


def test_a_bad_grid_is_one_line_and_leaves_no_sweep_folder(write_config, tmp_path):
    path = write_config(tiny_config())
    arguments = ["sweep", "-c", str(path), "--grid", "train.epcohs=1,2"]
    result = runner.invoke(app, [*arguments, "--runs-dir", str(tmp_path / "runs")])
    assert_one_line_error(result, "--grid", "train.epcohs", "did you mean 'epochs'")
    assert not (tmp_path / "runs").exists()


def test_swept_keys_come_from_the_folder_or_the_sweeps_below_it(tmp_path):
    from involution_bench.runs.sweep import swept_keys

    sweep = tmp_path / "sweep-20261129-000000-tiny"
    sweep.mkdir()
    (sweep / "sweep.yaml").write_text(yaml.safe_dump({"grid": {"train.epochs": [1, 2]}}))
    damaged = tmp_path / "sweep-20261129-000001-tiny"
    damaged.mkdir()
    (damaged / "sweep.yaml").write_text("grid: [unclosed")
    assert swept_keys(sweep) == ["train.epochs"]
    assert swept_keys(tmp_path) == ["train.epochs"]  # the damaged record is skipped
    assert swept_keys(tmp_path / "nothing") == []


def test_a_sweeps_identity_follows_its_inputs_not_the_schema(write_config, monkeypatch):
    """A newer invbench adds config keys; re-running the sweep must still find its folder."""
    from involution_bench.runs import sweep

    path = write_config(tiny_config())
    grid = ["train.batch_size=16,32"]
    before = plan_sweep(path, grid).identity
    original = sweep.config_to_dict
    monkeypatch.setattr(
        sweep, "config_to_dict", lambda config: {**original(config), "added_later": 1}
    )
    assert plan_sweep(path, grid).identity == before
    assert plan_sweep(path, grid, repeat=2).identity != before
    assert plan_sweep(path, grid, overrides=("train.epochs=3",)).identity != before
    path.write_text(path.read_text().replace("seed: 7", "seed: 8"))
    assert plan_sweep(path, grid).identity != before
