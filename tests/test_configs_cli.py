"""`invbench config` and `invbench diff`, through the CLI."""

from __future__ import annotations

import yaml
from conftest import assert_one_line_error, make_run, tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.config import load_config

runner = CliRunner()


def test_config_prints_the_resolved_config_and_feeding_it_back_is_identical(write_config, tmp_path):
    path = write_config(tiny_config())
    shown = runner.invoke(app, ["config", str(path), "--set", "train.epochs=3"])
    assert shown.exit_code == 0, shown.output
    resolved = yaml.safe_load(shown.stdout)
    assert resolved["train"]["epochs"] == 3
    assert resolved["train"]["optimizer"] == "adam"  # defaults are written out
    fed_back = tmp_path / "resolved.yaml"
    fed_back.write_text(shown.stdout)
    assert load_config(fed_back) == load_config(path, ["train.epochs=3"])
    again = runner.invoke(app, ["config", str(fed_back)])
    assert again.stdout == shown.stdout


def test_config_refuses_a_bad_config(write_config):
    path = write_config(tiny_config(epcohs=3))
    assert_one_line_error(runner.invoke(app, ["config", str(path)]), "train.epcohs")


def test_diff_shows_the_keys_that_differ_then_the_results(tmp_path):
    first = make_run(tmp_path, "a", [0.5, 0.6], seed=1, learning_rate=0.001)
    second = make_run(tmp_path, "b", [0.4, 0.45], seed=2, learning_rate=0.1)
    result = runner.invoke(app, ["diff", str(first), str(second)])
    assert result.exit_code == 0, result.output
    config_part, results_part = result.stdout.split("results", 1)
    assert "train.learning_rate" in config_part and "0.001" in config_part and "0.1" in config_part
    assert "seed" in config_part and "name" not in config_part.replace("config key", "")
    assert "best val acc" in results_part
    assert "0.6000" in results_part and "0.4500" in results_part


def test_diff_of_identical_configs_says_so(tmp_path):
    first = make_run(tmp_path, "a", [0.5], seed=1)
    second = make_run(tmp_path, "b", [0.5], seed=1)
    result = runner.invoke(app, ["diff", str(first), str(second)])
    assert result.exit_code == 0 and "configs: identical" in result.stdout


def test_diff_refuses_a_folder_that_is_not_a_run(tmp_path):
    run = make_run(tmp_path, "a", [0.5])
    result = runner.invoke(app, ["diff", str(run), str(tmp_path / "nothing")])
    assert_one_line_error(result, "nothing", "no such folder")


def test_a_packaged_config_is_found_by_its_name_or_path_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    for given in ("article-inv", "inv", "inv.yaml", "equal-macs/conv"):
        assert load_config(given).name in ("article-inv", "equal-conv")
    listed = runner.invoke(app, ["config", "--list"])
    assert listed.exit_code == 0, listed.output
    assert "article-inv" in listed.stdout and "equal-macs/attention" in listed.stdout
    shown = runner.invoke(app, ["config", "article-conv"])
    assert shown.exit_code == 0 and shown.stdout.startswith("name: article-conv")
    missing = runner.invoke(app, ["config", "no-such-config"])
    assert missing.exit_code == 2 and "nor a packaged config" in missing.stderr
