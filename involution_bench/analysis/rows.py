"""Turning several runs into one table, with repeated seeds aggregated.

Runs whose resolved configs differ only in their seed form one row: every
numeric column becomes mean ± sample standard deviation over the runs that
have a value, and the row says how many runs it holds. A difference of a
point or two between single runs is often noise; the spread makes that
visible.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from involution_bench.analysis.measures import MEASURES, robustness_value
from involution_bench.analysis.stats import Difference, MeanInterval
from involution_bench.config import config_from_dict, config_to_dict
from involution_bench.errors import ConfigError
from involution_bench.runs import Run


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    format: str  # a format spec for numbers; missing values show as "-"
    numeric: bool = True


COLUMNS = (
    Column("name", "run", "s", numeric=False),
    Column("status", "status", "s", numeric=False),
    Column("epochs", "epochs", "s", numeric=False),
    Column("seeds", "seeds", "s", numeric=False),
    Column("parameters", "params", ",d"),
    Column("trainable_parameters", "trainable", ",d"),
    Column("macs_per_image", "MACs/image", ",d"),
    Column("validated_on", "validated on", "s", numeric=False),
    Column("test_accuracy", "test acc", ".4f"),
    Column("test_accuracy_last", "test acc (last)", ".4f"),
    Column("best_val_accuracy", "best val acc", ".4f"),
    Column("best_epoch", "best epoch", "d"),
    Column("final_val_accuracy", "final val acc", ".4f"),
    Column("final_val_loss", "final val loss", ".4f"),
    Column("seconds_per_epoch", "s/epoch", ".1f"),
    Column("images_per_second", "train img/s", ",.0f"),
    # from robustness.json (invbench robustness, or train.robustness)
    *(Column(key, header, ".4f") for key, (header, _) in MEASURES.items()),
)
NUMERIC_COLUMNS = tuple(column for column in COLUMNS if column.numeric)
# What compare can judge rows by (`--metric`): the headline, its interval and Welch test.
METRICS = (
    "test_accuracy",
    "best_val_accuracy",
    "final_val_accuracy",
    "test_accuracy_last",
    *MEASURES,
)
DEFAULT_METRIC = "test_accuracy"


def column_of(key: str) -> Column:
    return next(column for column in COLUMNS if column.key == key)


def validated_on(run: Run) -> str:
    """What the run chose on: "split" (held out of the training set), "val/" (a folder
    dataset's own) or "test" (the source article's protocol, and every run written
    before validation splits existed)."""
    return run.summary.validation or "test"


def metric_value(run: Run, metric: str) -> float | None:
    """A run's value of `metric`. A run that validated on test and has no test accuracy
    (written before runs were tested at completion) has one all the same: its best
    validation accuracy is its chosen model's test accuracy, chosen on test.
    Robustness measures come from the run's robustness.json."""
    if metric in MEASURES:
        return robustness_value(run, metric)
    value = getattr(run.summary, metric)
    if value is None and metric == "test_accuracy" and run.summary.chosen_on_test:
        return run.summary.best_val_accuracy
    return value


CURVE_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class Stat:
    """A column's aggregate over a group of runs."""

    mean: float
    std: float | None  # sample standard deviation; None from a single value
    count: int  # runs that had a value


@dataclass(frozen=True)
class Row:
    """One table row: a single run, or the runs of one config over several seeds."""

    runs: tuple[Run, ...]
    values: dict[str, Any]  # text columns as str; numeric ones a number, a Stat, or None
    interval: MeanInterval | None = None  # the metric's 95% interval of the mean
    versus: Difference | None = None  # the metric against the baseline row's
    is_baseline: bool = False
    swept: dict[str, Any] = field(default_factory=dict)  # a sweep's grid key -> this row's value
    metric: str = DEFAULT_METRIC  # what the row is judged by

    @property
    def chosen_on_test(self) -> bool:
        """Whether any of its runs chose its best epoch on the test set."""
        return any(run.summary.chosen_on_test for run in self.runs)

    @property
    def size(self) -> int:
        return len(self.runs)


def run_numbers(run: Run) -> dict[str, Any]:
    """One run's numeric columns; what it has not produced yet is None."""
    summary = run.summary
    numbers = {
        column.key: metric_value(run, column.key)
        for column in NUMERIC_COLUMNS
        if column.key not in ("parameters", "trainable_parameters")
    }
    numbers["parameters"] = summary.total_parameters
    numbers["trainable_parameters"] = summary.trainable_parameters
    return numbers


def epochs_text(run: Run) -> str:
    planned = run.summary.epochs_planned
    return f"{run.epochs_done}/{'?' if planned is None else planned}"


def run_seed(run: Run) -> Any:
    seed = run.summary.seed
    return seed if seed is not None else (run.config or {}).get("seed")


SEED_LINE = re.compile(r"^seed:.*$", re.M)  # config.yaml's top-level seed


def group_key(run: Run) -> str:
    """Runs with equal keys differ at most in their seed.

    Configs are compared as their current schema (keys added since a run was
    written at their defaults), but parsed once per distinct text: the
    thousands of seeds of one config cost one YAML parse, not thousands.
    """
    text = run.config_text
    base = None if text is None else _config_key(SEED_LINE.sub("", text, count=1), run)
    if base is None:
        return f"path:{run.path}"
    # Runs chosen on the test set never share a row with runs chosen on held-out images.
    return f"config:{base}|validated_on:{validated_on(run)}"


_CONFIG_KEYS: dict[str, str | None] = {}


def _config_key(text_without_seed: str, run: Run) -> str | None:
    if text_without_seed not in _CONFIG_KEYS:
        config = run.config
        if config is None:
            return None
        rest = {key: value for key, value in current_schema(config).items() if key != "seed"}
        _CONFIG_KEYS[text_without_seed] = json.dumps(rest, sort_keys=True, default=str)
    return _CONFIG_KEYS[text_without_seed]


def current_schema(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config with the keys added since it was written, at their defaults.

    A key new to invbench (say `train.label_smoothing`) is missing from older
    runs' `config.yaml`; it changes nothing about those runs, so it must not
    split them from newer runs of the same config.
    """
    try:
        return config_to_dict(config_from_dict(config))
    except ConfigError:  # written by a different invbench: compare it as it is
        return config


def group_runs(runs: Iterable[Run]) -> list[tuple[Run, ...]]:
    """Groups in the order their first run appears."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    return [tuple(group) for group in groups.values()]


def make_row(runs: Sequence[Run]) -> Row:
    values: dict[str, Any] = {
        "name": runs[0].name,
        "status": _tally(run.status for run in runs),
        "epochs": _tally(epochs_text(run) for run in runs),
        "seeds": ", ".join(str(run_seed(run)) for run in runs),
        "validated_on": _tally(validated_on(run) for run in runs),
    }
    numbers = [run_numbers(run) for run in runs]
    for column in NUMERIC_COLUMNS:
        present = [entry[column.key] for entry in numbers if entry[column.key] is not None]
        if len(runs) == 1:
            values[column.key] = present[0] if present else None
        else:
            values[column.key] = aggregate(present)
    return Row(tuple(runs), values)


def aggregate(values: Sequence[float]) -> Stat | None:
    if not values:
        return None
    std = sample_std(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values))


def sample_std(values: Sequence[float]) -> float:
    """The sample standard deviation in floats (`statistics.stdev` works in exact
    fractions: thousands of runs' worth of cells take seconds)."""
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (len(values) - 1))


def format_number(value: float, spec: str) -> str:
    if spec.endswith("d"):
        if float(value).is_integer():
            value = int(value)
        else:  # a mean of integers, e.g. of best epochs
            spec = spec[:-1] + ".1f"
    return format(value, spec)


def format_cell(value: Any, column: Column, group_size: int = 1) -> str:
    if value is None:
        return "-"
    if not column.numeric:
        return str(value)
    if not isinstance(value, Stat):
        return format_number(value, column.format)
    text = format_number(value.mean, column.format)
    if value.std:  # identical values (a group's parameter count) need no spread
        text += " ± " + format_number(value.std, column.format)
    if value.count < group_size:
        text += f" ({value.count} of {group_size})"
    return text


def swept_labels(rows: Sequence[Row]) -> list[str]:
    """A swept key's last part (`kernel_size`), or all of it where two would clash."""
    keys = list(rows[0].swept) if rows else []
    short = [key.rsplit(".", 1)[-1] for key in keys]
    return [
        label if short.count(label) == 1 else key for key, label in zip(keys, short, strict=True)
    ]


def mean_curves(runs: Sequence[Run]) -> dict[str, tuple[list[float], list[float]]]:
    """Per history key: the mean and spread at each epoch over the runs that reached it."""
    curves = {}
    for key in CURVE_KEYS:
        series = [list(run.history.get(key, [])) for run in runs]
        means, spreads = [], []
        for epoch in range(max(map(len, series), default=0)):
            values = [values[epoch] for values in series if len(values) > epoch]
            means.append(statistics.fmean(values))
            spreads.append(sample_std(values) if len(values) > 1 else 0.0)
        curves[key] = (means, spreads)
    return curves


def row_labels(rows: Sequence[Row], with_group_size: bool = True) -> list[str]:
    """Legend labels: the name and a sweep's values; rows that still share a label are
    told apart by their first run's folder."""
    bases = []
    for row, swept in zip(rows, _swept_texts(rows), strict=True):
        on_test = ", validated on test" if row.chosen_on_test else ""
        bases.append(f"{row.values['name']} {swept}".strip() + on_test)
    counts = Counter(bases)
    labels = []
    for row, label in zip(rows, bases, strict=True):
        if counts[label] > 1:
            label += f" ({row.runs[0].path.name})"
        if with_group_size and row.size > 1:
            label += f", mean of {row.size}"
        labels.append(label)
    return labels


def _swept_texts(rows: Sequence[Row]) -> list[str]:
    names = swept_labels(rows)
    return [
        ", ".join(f"{name}={value}" for name, value in zip(names, row.swept.values(), strict=True))
        for row in rows
    ]


def _tally(labels: Iterable[str]) -> str:
    """'completed' when all agree, else e.g. 'completed 2, running 1'."""
    counts = Counter(labels)
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{label} {count}" for label, count in counts.most_common())


def human_count(value: float) -> str:
    """8225408 -> '8.23 M', 65344 -> '65.3 K'."""
    for threshold, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= threshold:
            return f"{value / threshold:.3g} {unit}"
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"
