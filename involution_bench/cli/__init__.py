"""The `invbench` command line: parsing, friendly errors and Rich output over the library.

The Typer app and its shared pieces are in `app.py`; a command group is one
file: `train.py` (train, sweep), `slurm.py` (slurm), `compare.py` (compare, runs, plot),
`models.py` (info, eval, kernels), `robustness.py` (robustness), `data.py`
(data), `configs.py` (config, diff), `bench.py` (bench op, model, layers,
cli, corruptions, runs), `epoch.py` (bench epoch) and `peer.py` (bench peer).

Exit codes: 0 success; 2 bad usage or input (config, paths, data), with one
line naming the file or key and the problem; 130 interrupted; 1 unexpected
(a failing disk or permission: one line naming the path).

TensorFlow and Keras take seconds to import and print chatter when they do,
so nothing here imports them at module level: `--help` and the commands that
only read run folders (runs, compare, plot) never load them, and the
commands that do load them (`load_tensorflow`) through `quiet`, which keeps
their start-up lines off the terminal.
"""

# Importing a command module registers its commands, in this order in --help.
# isort: off
from involution_bench.cli import train  # noqa: F401
from involution_bench.cli import slurm  # noqa: F401
from involution_bench.cli import compare  # noqa: F401
from involution_bench.cli import models  # noqa: F401
from involution_bench.cli import robustness  # noqa: F401
from involution_bench.cli import data  # noqa: F401
from involution_bench.cli import configs  # noqa: F401
from involution_bench.cli import bench  # noqa: F401
from involution_bench.cli import epoch  # noqa: F401
from involution_bench.cli import peer  # noqa: F401
from involution_bench.cli.app import app
# isort: on

__all__ = ["app"]
