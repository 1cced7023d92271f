"""Where invbench caches what it can rebuild: the native kernel, generated image sets.

$INVBENCH_CACHE_DIR, else $XDG_CACHE_HOME/invbench, else ~/.cache/invbench.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "INVBENCH_CACHE_DIR"


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "invbench"
