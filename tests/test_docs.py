"""The examples in docs/commands.md: each one parses against the CLI as written, and
those that finish in seconds run as written, on tiny data and hand-made run folders."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pytest
import typer.main
import yaml
from conftest import make_run
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.config import config_to_dict, dump_config, load_config, matching_paths
from involution_bench.data import DATA_DIR_ENV

ROOT = Path(__file__).resolve().parent.parent
COMMANDS_DOC = ROOT / "docs" / "commands.md"
runner = CliRunner()


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands(pages=(COMMANDS_DOC,)) -> list[list[str]]:
    """Every `invbench ...` line of the pages' code blocks (a shown prompt `$ ` too),
    continuations joined."""
    found = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.removeprefix("$ ").strip()
                if not line.startswith("invbench "):
                    continue
                words = shlex.split(line, comments=True)
                if words not in found:
                    found.append(words[1:])
    return found


def leaf_command(words: list[str]):
    """The click command a line names, and the arguments left for it."""
    command = typer.main.get_command(app)
    while hasattr(command, "commands") and words and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


COMMANDS = documented_commands()


EVERY_PAGE = documented_commands(DOCS)


@pytest.mark.parametrize("words", EVERY_PAGE, ids=" ".join)
def test_every_invbench_line_of_the_readme_and_docs_parses(words):
    command, arguments = leaf_command(words)
    assert not hasattr(command, "commands"), f"{words} names a group, not a command"
    command.make_context(words[0], list(arguments))


def test_every_make_target_the_docs_name_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    named = {
        target
        for page in DOCS
        for target in re.findall(
            r"(?:`|^)make ([a-z][a-z-]+)", page.read_text(encoding="utf-8"), flags=re.M
        )
    }
    assert named and named <= targets, named - targets


def test_every_file_the_docs_link_to_exists():
    missing = []
    for page in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if path and "://" not in path and not (page.parent / path).exists():
                missing.append(f"{page.name}: {target}")
    assert not missing


def test_the_config_reference_holds_every_key_at_its_default():
    """The annotated config at the top of docs/configs.md: every key exists, and every
    data and train value shown is the default."""
    from involution_bench.config import TrainConfig, config_from_dict
    from involution_bench.config.sections import DataConfig

    text = (ROOT / "docs" / "configs.md").read_text(encoding="utf-8")
    shown = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, flags=re.S).group(1))
    config = config_from_dict(shown)  # an unknown key would be refused here
    assert shown["data"] == DataConfig().model_dump(mode="json")
    assert set(shown["train"]) == set(TrainConfig.model_fields)
    assert config.train == TrainConfig()


def test_the_page_has_examples_of_the_main_commands():
    named = {words[0] for words in COMMANDS}
    assert {"train", "sweep", "compare"} <= named


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_example_parses_as_written(words):
    command, arguments = leaf_command(words)
    assert not hasattr(command, "commands"), f"{words} names a group, not a command"
    command.make_context(words[0], list(arguments))  # raises on an unknown option or value


def sandbox(root: Path) -> None:
    """The run folders the comparison examples name, as training leaves them."""
    runs = root / "runs"
    for seed in (42, 43):
        make_run(
            runs / "reproduce",
            f"2026112{seed - 40}-000001-article-conv",
            [0.5, 0.7],
            name="article-conv",
            seed=seed,
            planned=2,
        )
        make_run(
            runs / "reproduce",
            f"2026112{seed - 40}-000002-article-inv",
            [0.3, 0.45 + seed / 1000],
            name="article-inv",
            seed=seed,
            planned=2,
        )
        make_run(
            runs / "rednet-pair",
            f"2026112{seed - 40}-000001-resnet",
            [0.6, 0.80 + seed / 1000],
            name="resnet",
            seed=seed,
            planned=2,
        )
        make_run(
            runs / "rednet-pair",
            f"2026112{seed - 40}-000002-rednet",
            [0.6, 0.78 + seed / 2000],
            name="rednet",
            seed=seed,
            planned=2,
        )
    make_run(runs, "a", [0.4], name="a", planned=1)
    make_run(runs, "b", [0.5], name="b", planned=1)
    sweep = runs / "kernel-size" / "sweep-20261126-000000-rednet"
    key = "model.layers.*.residual.layers.*.involution.kernel_size"
    members = []
    for index, size in enumerate((3, 7)):
        folder = f"m{index:02d}-kernel_size={size}-seed=42"
        run = make_run(
            sweep / folder,
            "20261126-000003-rednet",
            [0.6, 0.7 + size / 100],
            name="rednet",
            seed=42,
            planned=2,
        )
        rednet = config_to_dict(load_config(ROOT / "configs" / "rednet.yaml"))
        sizes = [f"{path}={size}" for path in matching_paths(rednet, key)]
        (run / "config.yaml").write_text(
            dump_config(load_config(ROOT / "configs" / "rednet.yaml", sizes))
        )
        members.append({"index": index, "folder": folder, "seed": 42, "values": {key: size}})
    (sweep / "sweep.yaml").write_text(
        yaml.safe_dump({"identity": "x", "grid": {key: [3, 7]}, "members": members})
    )


def expanded(words: list[str], cwd: Path) -> list[str]:
    """The words as bash hands them over: globs expanded where they match."""
    out = []
    for word in words:
        matches = sorted(glob.glob(word, root_dir=cwd)) if "*" in word else []
        out += matches or [word]
    return out


FAST = [words for words in COMMANDS if words[0] == "compare" or "train.epochs=1" in words]


@pytest.mark.parametrize("words", FAST, ids=" ".join)
def test_the_quick_examples_run_as_written(words, tmp_path, cifar_dir, monkeypatch):
    sandbox(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    result = runner.invoke(app, expanded(words, tmp_path))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_the_readmes_timings_are_those_of_the_benchmarks_page():
    """The README quotes a few of docs/benchmarks.md's figures; they must be its own."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    bullet = readme.split("- In wall-clock time RedNet", 1)[1].split("\n- ", 1)[0]
    bullet = bullet.split("\n\n", 1)[0]
    figures = re.findall(r"\b\d+\.\d+ (?:ms|times)|\b\d+\.\d+(?= against)", bullet)
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    numbers = [figure.split()[0] for figure in figures]
    assert len(numbers) >= 6
    assert [number for number in numbers if number not in benchmarks] == []
