"""A folder of many finished runs, as training leaves them: for `invbench bench runs`.

Each run has its resolved `config.yaml` (a packaged config, its learning rate
and seed varied), a full `summary.json` (per-layer table included) and a
20-epoch `history.json`, under a folder name as training gives it. Groups of
runs differ only in their seed, so `compare` has rows to aggregate.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from involution_bench.config import config_to_dict, load_config
from involution_bench.config.packaged import find_config
from involution_bench.runs.files import CONFIG_FILE, HISTORY_FILE, SUMMARY_FILE
from involution_bench.runs.summary import RunStatus, RunSummary

# config -> (parameters, multiply-adds per image, seconds per epoch), as `info` and
# a 2-core CPU give them
CONFIGS = {
    "equal-macs/conv": (93674, 4154624, 62.0),
    "equal-macs/involution": (63512, 4075008, 98.0),
    "equal-macs/attention": (37450, 4068608, 180.0),
    "rednet": (61386, 2486528, 75.0),
}
EPOCHS = 20
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _summary(config: dict, seed: int, rng: random.Random, costs: tuple) -> dict:
    parameters, macs, seconds = costs
    best = rng.uniform(0.6, 0.75) - (0.04 if macs < 3e6 else 0.0)
    layers = len(config["model"]["layers"])
    return RunSummary(
        name=config["name"],
        seed=seed,
        status=RunStatus.completed,
        started_at="2026-12-01T00:00:00+00:00",
        finished_at="2026-12-01T00:20:00+00:00",
        parameters={"total": parameters, "trainable": parameters - 736, "non_trainable": 736},
        macs_per_image=macs,
        layers=[
            {
                "name": f"layer_{i}",
                "kind": "Conv2D",
                "output_shape": [32, 32, 16],
                "parameters": 2320,
                "macs": 2359296,
            }
            for i in range(layers)
        ],
        dataset="cifar10",
        validation="split",
        validation_images=5000,
        test_accuracy=best - 0.01,
        test_accuracy_last=best - 0.02,
        epochs_planned=EPOCHS,
        epochs_done=EPOCHS,
        best_val_accuracy=best,
        best_epoch=rng.randint(15, EPOCHS),
        final_val_accuracy=best - 0.01,
        final_val_loss=0.9,
        seconds_per_epoch=seconds,
        images_per_second=45000 / seconds,
    ).to_dict()


def _history(rng: random.Random) -> dict:
    curve = [rng.uniform(0.3, 0.7) for _ in range(EPOCHS)]
    return {
        "loss": [2 - value for value in curve],
        "accuracy": curve,
        "val_loss": [2.1 - value for value in curve],
        "val_accuracy": curve,
        "epoch_seconds": [60.0] * EPOCHS,
        "train_seconds": [55.0] * EPOCHS,
    }


def write_fleet(root: Path, count: int, seeds_per_group: int = 100) -> list[Path]:
    """`count` finished runs in `root`, `seeds_per_group` seeds of each config."""
    bases = [config_to_dict(load_config(find_config(Path(name)))) for name in CONFIGS]
    costs = list(CONFIGS.values())
    rng = random.Random(0)
    written = []
    for index in range(count):
        group, seed = divmod(index, seeds_per_group)
        config = json.loads(json.dumps(bases[group % len(bases)]))
        config["seed"] = seed
        config["train"]["learning_rate"] = round(0.01 * (1 + group // len(bases)), 4)
        folder = root / f"20261201-{index:06d}-{config['name']}"
        folder.mkdir(parents=True)
        (folder / CONFIG_FILE).write_text(
            yaml.dump(config, Dumper=DUMPER, sort_keys=False), encoding="utf-8"
        )
        summary = _summary(config, seed, rng, costs[group % len(bases)])
        (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
        (folder / HISTORY_FILE).write_text(json.dumps(_history(rng), indent=2), encoding="utf-8")
        written.append(folder)
    return written
