"""Every file a run folder (or a sweep folder) holds, named once.

A run folder is `<root>/<YYYYmmdd-HHMMSS>-<name>[-N]/`; `RunFolder` in
`runs.writer` is the only code that writes into one.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = "config.yaml"  # the fully resolved config
SUMMARY_FILE = "summary.json"  # status, costs, results, provenance
HISTORY_FILE = "history.json"  # per-epoch curves, rewritten every epoch
MODEL_FILE = "model.keras"  # the last model
BEST_MODEL_FILE = "best.keras"  # the model of the best validation accuracy
CHECKPOINTS_DIR = "checkpoints"  # model and optimizer state while unfinished
TENSORBOARD_DIR = "tensorboard"  # with train.tensorboard
LOSS_PLOT = "loss.png"
ACCURACY_PLOT = "accuracy.png"
EVAL_FILE = "eval.json"  # invbench eval
CONFUSION_PLOT = "confusion.png"  # invbench eval
KERNELS_PLOT = "kernels.png"  # invbench kernels
LOCK_FILE = ".lock"  # held by the process that trains the run
SWEEP_FILE = "sweep.yaml"  # in a sweep folder: the command, grid and members
ROBUSTNESS_FILE = "robustness.json"  # invbench robustness, or train.robustness
ROBUSTNESS_PLOT = "robustness.png"  # accuracy against severity and against shift
RELIABILITY_PLOT = "reliability.png"  # calibration, clean and corrupted

# The files worth keeping of a finished run, small enough to commit (results/).
SMALL_FILES = (CONFIG_FILE, SUMMARY_FILE, HISTORY_FILE)


def checkpoint_name(epoch: int) -> str:
    """The model and optimizer state saved at the end of `epoch` (1-based)."""
    return f"{CHECKPOINTS_DIR}/epoch-{epoch:04d}.keras"


def checkpoint_path(run_dir: Path, epoch: int) -> Path:
    return run_dir / checkpoint_name(epoch)
