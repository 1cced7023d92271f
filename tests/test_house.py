"""The house rules: imports point down, no cycles, small modules, no TensorFlow where
none belongs, a layer kind or a dataset is one file, docstring examples run."""

from __future__ import annotations

import ast
import doctest
import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import involution_bench

PACKAGE = Path(involution_bench.__file__).parent
ROOT = PACKAGE.parent
MAX_LINES = 350


def package_modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def module_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports at module level (TYPE_CHECKING blocks too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found = set()
    nodes = []
    for node in tree.body:
        nodes += [*node.body, *node.orelse] if isinstance(node, ast.If) else [node]
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join([*here, *([base] if base else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for end in range(2, len(parts) + 1):  # the module and its parent packages
                candidate = ".".join(parts[:end])
                if candidate in known and candidate != name:
                    found.add(candidate)
    return found


def test_no_import_cycles_between_modules():
    modules = package_modules()
    graph = {name: module_level_imports(name, path, set(modules)) for name, path in modules.items()}
    # A package importing its own submodules (re-exports) is no cycle of the code's design.
    graph = {
        name: {target for target in targets if not target.startswith(name + ".")}
        for name, targets in graph.items()
    }
    cycles = []

    def visit(node, trail, seen):
        for target in sorted(graph[node]):
            if target in trail:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in seen:
                seen.add(target)
                visit(target, [*trail, target], seen)

    for start in sorted(graph):
        visit(start, [start], {start})
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles[:5])


def test_the_import_contracts_hold():
    """pyproject's [tool.importlinter]: stages import only the stages below them."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_no_module_is_over_350_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long


TENSORFLOW_FREE = (
    "involution_bench.config",
    "involution_bench.kinds",
    "involution_bench.data",
    "involution_bench.runs",
    "involution_bench.runs.sweep",
    "involution_bench.analysis.compare",
    "involution_bench.analysis.tables",
    "involution_bench.analysis.listing",
    "involution_bench.analysis.plots",
    "involution_bench.analysis.image_plots",
    "involution_bench.system.machine",
    "involution_bench.system.provenance",
    "involution_bench.robustness.suite",
    "involution_bench.robustness.figures",
    "involution_bench.cli",
)


def test_configs_run_folders_analysis_and_the_cli_import_no_tensorflow():
    code = f"""
        import importlib, json, sys
        for name in {TENSORFLOW_FREE!r}:
            importlib.import_module(name)
        from involution_bench.config import load_config
        load_config("configs/rednet.yaml")
        print(json.dumps([name for name in ("tensorflow", "keras") if name in sys.modules]))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize(
    "module", ["involution_bench.ops.involution_layer", "involution_bench.ops.local_attention"]
)
def test_the_layers_docstring_examples_run(module):
    found = doctest.testmod(importlib.import_module(module), verbose=False)
    assert found.attempted >= 3
    assert found.failed == 0


def test_the_docs_table_of_layer_kinds_is_the_registrys():
    from involution_bench.kinds import markdown_table, replace_table

    text = (ROOT / "docs" / "configs.md").read_text(encoding="utf-8")
    assert markdown_table() in text
    assert replace_table(text) == text  # `make docs` would change nothing


NEW_KIND = """
from involution_bench.kinds.base import LayerKind, NameOnlyArgs, unchanged

KINDS = (
    LayerKind(
        name="silu",
        arguments=NameOnlyArgs,
        output_shape=unchanged,
        builder="keras.layers:Activation",
        takes="any",
        example={},
    ),
)
"""

NEW_DATASET = """
from involution_bench.data.base import Dataset

DATASET = Dataset(
    name="tiny_set",
    title="a tiny set",
    summary="two classes",
    load=lambda data_dir, input_shape: None,
    image_shape=(8, 8, 1),
    class_names=("a", "b"),
)
"""


@pytest.mark.parametrize(
    ("package", "source", "registry", "name"),
    [
        ("involution_bench.kinds", NEW_KIND, "LAYER_KINDS", "silu"),
        ("involution_bench.data", NEW_DATASET, "DATASETS", "tiny_set"),
    ],
)
def test_a_new_layer_kind_or_dataset_is_one_file(package, source, registry, name, tmp_path):
    """A file dropped into the package is registered, with nothing else edited."""
    module = importlib.import_module(package)
    (tmp_path / f"{name}_module.py").write_text(source)
    original = list(module.__path__)
    module.__path__.append(str(tmp_path))
    try:
        found = module._discover()
    finally:
        module.__path__[:] = original
        sys.modules.pop(f"{package}.{name}_module", None)
    assert name in found
    assert set(getattr(module, registry)) < set(found)
