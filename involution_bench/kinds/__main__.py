"""`python -m involution_bench.kinds FILE`: rewrite FILE's generated table of layer kinds."""

from __future__ import annotations

import sys
from pathlib import Path

from involution_bench.kinds import replace_table

if __name__ == "__main__":
    for name in sys.argv[1:]:
        path = Path(name)
        path.write_text(replace_table(path.read_text(encoding="utf-8")), encoding="utf-8")
        print(path)
