"""The comparison table from hand-made runs, unfinished ones included."""

from __future__ import annotations

from pathlib import Path

from involution_bench.compare import COLUMNS, comparison_rows
from involution_bench.runs import Run

FINISHED = Run(
    Path("runs/a"),
    {
        "name": "article-inv",
        "status": "completed",
        "epochs_planned": 2,
        "parameters": {"total": 13080},
        "best_val_accuracy": 0.43714,
        "best_epoch": 2,
        "final_val_accuracy": 0.4358,
        "final_val_loss": 1.60349,
        "seconds_per_epoch": 32.46,
        "images_per_second": 1590.4,
    },
    {"val_accuracy": [0.3, 0.43714]},
)
JUST_STARTED = Run(
    Path("runs/b"),
    {"name": "article-conv", "status": "running", "epochs_planned": 20},
    {"val_accuracy": []},
)


def test_rows_format_numbers_and_mark_what_is_missing():
    finished, started = comparison_rows([FINISHED, JUST_STARTED])
    headers = [column.header for column in COLUMNS]
    assert dict(zip(headers, finished, strict=True)) == {
        "run": "article-inv",
        "status": "completed",
        "epochs": "2/2",
        "params": "13,080",
        "best val acc": "0.4371",
        "best epoch": "2",
        "final val acc": "0.4358",
        "final val loss": "1.6035",
        "s/epoch": "32.5",
        "train img/s": "1,590",
    }
    assert started[:3] == ["article-conv", "running", "0/20"]
    assert started[3:] == ["-"] * (len(COLUMNS) - 3)
