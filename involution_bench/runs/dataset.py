"""The dataset a run was trained on, as its saved config names it."""

from __future__ import annotations

from involution_bench.config import config_from_dict
from involution_bench.data import ImageData, load_dataset
from involution_bench.errors import RunError
from involution_bench.runs.files import CONFIG_FILE
from involution_bench.runs.reader import Run


def run_data(run: Run) -> ImageData:
    """The run's dataset, its test images limited as they were (`data.limit_test`)."""
    if run.config is None:
        raise RunError(str(run.path / CONFIG_FILE), "is missing or unreadable: which data?")
    config = config_from_dict(run.config, str(run.path / CONFIG_FILE))
    data = config.data
    loaded = load_dataset(data.name, data.dir, tuple(config.model.input_shape))
    return loaded.limited(None, data.limit_test)
