"""Dotted keys: how `--set`, `--grid`, `diff` and TensorBoard name a place in a config.

`train.epochs` is a key of a section; `model.layers.0.conv2d.filters` goes
through a list by index; in a grid key, `*` stands for every index or key
(`model.layers.*.involution.kernel_size`). Plain data only: these work on
the dicts a config dumps to, not on the pydantic model.
"""

from __future__ import annotations

from typing import Any

import yaml

from involution_bench.errors import ConfigError
from involution_bench.schema import did_you_mean


def flatten_config(tree: Any, prefix: str = "") -> dict[str, Any]:
    """`{"train": {"epochs": 3}}` -> `{"train.epochs": 3}`; list items by index, as
    `--set` names them (`model.layers.0.conv2d.filters`)."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def apply_override(resolved: dict[str, Any], override: str) -> None:
    path, sep, value_text = override.partition("=")
    if not sep or not path:
        raise ConfigError("--set", override, "must look like key.path=value")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError:
        raise ConfigError("--set", path, f"value {value_text!r} is not valid YAML") from None
    parts = path.split(".")
    node: Any = resolved
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError("--set", here, f"list index must be 0..{len(node) - 1}")
            part = int(part)
        elif isinstance(node, dict):
            if part not in node:
                raise ConfigError("--set", here, f"no such key{did_you_mean(part, node)}")
        else:
            raise ConfigError("--set", here, "goes below a value that has no keys")
        if last:
            node[part] = value
        else:
            node = node[part]


def config_values(config: Any, key: str) -> list[Any]:
    """The values at every path a grid key names in a config (none where it has none)."""
    values = []
    for path in matching_paths(config, key):
        node = config
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        values.append(node)
    return values


def matching_paths(config: Any, key: str) -> list[str]:
    found: list[str] = []

    def walk(node: Any, parts: list[str], prefix: list[str]) -> None:
        if not parts:
            found.append(".".join(prefix))
            return
        head, rest = parts[0], parts[1:]
        if isinstance(node, list):
            children = {str(index): child for index, child in enumerate(node)}
        elif isinstance(node, dict):
            children = {str(name): child for name, child in node.items()}
        else:
            return
        for name, child in children.items():
            if head in ("*", name):
                walk(child, rest, [*prefix, name])

    walk(config, key.split("."), [])
    return found
