"""Run folders: the names of their files, their one writer and reader, the lock, sweeps.

- `files`: every file name a run or sweep folder holds;
- `storage`: atomic writes, new folders, the output root;
- `summary`: `summary.json`'s fields and `RunStatus`;
- `writer`: `RunFolder` and `RunWriter`, the only code that writes a run;
- `reader`: `Run`, `load_run`, `read_run`, `find_runs`;
- `lock`: one process per run folder;
- `sweep`: a grid of configs as one folder of runs.

Nothing here imports TensorFlow: the training loop hands it numbers and
functions that save a model.
"""

from involution_bench.runs.files import (
    ACCURACY_PLOT,
    BEST_MODEL_FILE,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    CONFUSION_PLOT,
    EVAL_FILE,
    HISTORY_FILE,
    KERNELS_PLOT,
    LOSS_PLOT,
    MODEL_FILE,
    SUMMARY_FILE,
    checkpoint_path,
)
from involution_bench.runs.lock import RunLock
from involution_bench.runs.reader import Run, find_runs, is_run_dir, load_run, newest_run, read_run
from involution_bench.runs.storage import (
    create_run_dir,
    create_unique_dir,
    ensure_root,
    read_json,
    timestamp,
    write_atomic,
    write_json,
)
from involution_bench.runs.summary import RunStatus, RunSummary
from involution_bench.runs.writer import RunFolder, RunWriter

__all__ = [
    "ACCURACY_PLOT",
    "BEST_MODEL_FILE",
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "CONFUSION_PLOT",
    "EVAL_FILE",
    "HISTORY_FILE",
    "KERNELS_PLOT",
    "LOSS_PLOT",
    "MODEL_FILE",
    "SUMMARY_FILE",
    "Run",
    "RunFolder",
    "RunLock",
    "RunStatus",
    "RunSummary",
    "RunWriter",
    "checkpoint_path",
    "create_run_dir",
    "create_unique_dir",
    "ensure_root",
    "find_runs",
    "is_run_dir",
    "load_run",
    "newest_run",
    "read_json",
    "read_run",
    "timestamp",
    "write_atomic",
    "write_json",
]
