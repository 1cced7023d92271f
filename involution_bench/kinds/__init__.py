"""Every layer kind a config can name, each declared once, in one file of this package.

A module here declares `KINDS`, a tuple of `LayerKind`s; importing the
package collects them all into `LAYER_KINDS`, so a new kind is a new file
(plus the layer's own file in `ops` when the layer is new). Config checking,
model building, MAC counting, maps, `bench model` and the docs' table all
read this registry. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import importlib
import pkgutil

from involution_bench.kinds.base import (
    Baseline,
    LayerKind,
    LayerMap,
    Shape,
    ShapeProblem,
    no_macs,
)


def _discover() -> dict[str, LayerKind]:
    found: dict[str, LayerKind] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if module.name == "base" or module.name.startswith("_"):  # __main__ too
            continue
        for kind in importlib.import_module(f"{__name__}.{module.name}").KINDS:
            if kind.name in found:
                raise RuntimeError(f"layer kind {kind.name!r} is declared twice")
            found[kind.name] = kind
    return found


LAYER_KINDS: dict[str, LayerKind] = _discover()


def markdown_table() -> str:
    """The docs' table of layer kinds (docs/configs.md), made from the registry."""
    lines = ["| layer kind | what it is | arguments (defaults) |", "|---|---|---|"]
    for kind in sorted(LAYER_KINDS.values(), key=lambda kind: kind.name):
        arguments = []
        for field_name, field in kind.arguments.model_fields.items():
            if field_name == "name":
                continue
            if field.is_required():
                arguments.append(f"`{field_name}`")
            else:
                default = field.get_default(call_default_factory=True)
                shown = "none" if default is None else str(default).lower()
                arguments.append(f"`{field_name}` ({shown})")
        lines.append(f"| `{kind.name}` | {kind.summary} | {', '.join(arguments) or 'none'} |")
    return "\n".join(lines) + "\n"


TABLE_START = "<!-- layer-kinds:"
TABLE_END = "<!-- /layer-kinds -->"


def replace_table(text: str) -> str:
    """`text` with the table between its markers made anew from the registry."""
    head, rest = text.split(TABLE_START, 1)
    marker, _ = rest.split("-->\n", 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_START}{marker}-->\n{markdown_table()}{TABLE_END}{tail}"


__all__ = [
    "LAYER_KINDS",
    "Baseline",
    "LayerKind",
    "LayerMap",
    "Shape",
    "ShapeProblem",
    "markdown_table",
    "no_macs",
]
