"""The configs that ship with invbench, found by name: `-c article-inv` anywhere.

A config argument that is not a file is looked up among the packaged configs
(`involution_bench/configs/`, which `configs/` in the repository links to):
by the path below that folder, with or without `.yaml` (`inv`,
`equal-macs/conv`), or by the `name:` a config gives itself (`article-inv`).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

PACKAGED = Path(__file__).resolve().parent.parent / "configs"
_NAME = re.compile(r"^name:\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*$", re.M)


@functools.cache
def packaged_configs() -> dict[str, Path]:
    """Every packaged config by its path below the folder (without .yaml) and its name."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGED.rglob("*.yaml")):
        found[path.relative_to(PACKAGED).with_suffix("").as_posix()] = path
        match = _NAME.search(path.read_text(encoding="utf-8"))
        if match:
            found.setdefault(match.group(1), path)
    return found


def find_config(given: str | Path) -> Path:
    """`given` itself where it exists (or names a path); else the packaged config it
    names; else `given` unchanged, for the reader to say it is missing."""
    path = Path(given)
    if path.exists():
        return path
    key = str(given).removesuffix(".yaml")
    return packaged_configs().get(key, path)
