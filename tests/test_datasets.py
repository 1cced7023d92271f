"""The dataset registry: CIFAR-100 and image folders in their official layouts, and
every command on them."""

from __future__ import annotations

import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, tiny_config
from PIL import Image
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATASETS, load_dataset
from involution_bench.data.cifar100 import CLASS_NAMES as CIFAR100_CLASSES
from involution_bench.errors import DataError

runner = CliRunner()
FOLDER_CLASSES = ("cat", "dog", "frog")


def write_cifar100(root: Path, seed: int = 0) -> Path:
    """`root/cifar-100-python/` with `train` (40 images), `test` (20) and `meta`."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, count in (("train", 40), ("test", 20)):
        fine = [int(value) for value in rng.integers(0, 100, count)]
        batch = {
            b"filenames": [f"img_{i}.png".encode() for i in range(count)],
            b"batch_label": name.encode(),
            b"fine_labels": fine,
            b"coarse_labels": [label // 5 for label in fine],
            b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"fine_label_names": [name.encode() for name in CIFAR100_CLASSES]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def write_image_folder(root: Path, per_class: int = 6, size=(20, 24)) -> Path:
    """`root/train/<class>/*.png` and `root/test/<class>/*.png`, odd-sized RGB images;
    one test class holds a JPEG."""
    rng = np.random.default_rng(1)
    for split, count in (("train", per_class), ("test", 2)):
        for label, name in enumerate(FOLDER_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                pixels[..., label] = 255  # each class has its own colour, so it can be learnt
                suffix = "jpg" if (split, label, index) == ("test", 2, 0) else "png"
                Image.fromarray(pixels).save(folder / f"{index}.{suffix}")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


def folder_config(root: Path, units: int = 3, **data) -> dict:
    config = tiny_config("folder-tiny", epochs=1, batch_size=8)
    config["data"] = {"name": "folder", "dir": str(root), **data}
    config["model"]["input_shape"] = [16, 16, 3]
    config["model"]["layers"] = [
        {"involution": {"kernel_size": 3, "reduction_ratio": 1, "name": "inv_1"}},
        "relu",
        {"conv2d": {"filters": 4, "kernel_size": 3, "padding": "same"}},
        "global_avg_pool",
        {"dense": {"units": units}},
    ]
    return config


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images"))


def test_the_registry_knows_three_datasets():
    assert {"cifar10", "cifar100", "folder"} <= set(DATASETS)
    assert len(DATASETS["cifar100"].class_names) == 100


@pytest.mark.parametrize("layout", ["folder", "archive"])
def test_cifar100_reads_its_official_layout_with_fine_labels(tmp_path, layout):
    root = write_cifar100(tmp_path / "copy")
    if layout == "archive":
        archive_root = tmp_path / "archived"
        archive_root.mkdir()
        with tarfile.open(archive_root / "cifar-100-python.tar.gz", "w:gz") as tar:
            tar.add(root / "cifar-100-python", arcname="cifar-100-python")
        root = archive_root
    data = load_dataset("cifar100", str(root))
    raw = pickle.loads((tmp_path / "copy" / "cifar-100-python" / "train").read_bytes())
    assert data.x_train.shape == (40, 32, 32, 3) and data.x_test.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(data.y_train, raw[b"fine_labels"])
    # rows hold 1024 red, then green, then blue values
    np.testing.assert_array_equal(data.x_train[0, :, :, 1].reshape(-1), raw[b"data"][0, 1024:2048])
    assert data.num_classes == 100 and data.class_names[0] == "apple"


def test_cifar100_missing_or_damaged_is_one_error(tmp_path):
    with pytest.raises(DataError, match="holds neither cifar-100-python/"):
        load_dataset("cifar100", str(tmp_path))
    root = write_cifar100(tmp_path / "copy")
    (root / "cifar-100-python" / "test").write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(DataError, match="truncated or corrupted batch file"):
        load_dataset("cifar100", str(root))


def test_an_image_folder_is_read_resized_in_sorted_class_order(image_folder):
    data = load_dataset("folder", str(image_folder), (16, 16, 3))
    assert data.class_names == FOLDER_CLASSES
    assert data.x_train.shape == (18, 16, 16, 3) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (6, 16, 16, 3)
    assert sorted(np.bincount(data.y_train).tolist()) == [6, 6, 6]
    assert (
        data.y_train[:6].tolist() != sorted(data.y_train[:6].tolist())
        or len(set(data.y_train[:6].tolist())) > 1
    )  # a fixed shuffle: the first images are not all of one class
    # each class's colour channel survives the resize
    for label in range(3):
        images = data.x_train[data.y_train == label].astype(float)
        assert images[..., label].mean() > 200


def test_an_image_folder_in_grey_gets_one_channel(image_folder):
    data = load_dataset("folder", str(image_folder), (8, 8, 1))
    assert data.x_train.shape == (18, 8, 8, 1)


def test_an_image_folder_with_problems_names_the_path(tmp_path, image_folder):
    with pytest.raises(DataError, match="holds no train/"):
        load_dataset("folder", str(tmp_path), (16, 16, 3))
    broken = write_image_folder(tmp_path / "broken", per_class=1)
    (broken / "train" / "dog" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"0\.png: cannot be decoded"):
        load_dataset("folder", str(broken), (16, 16, 3))
    stray = write_image_folder(tmp_path / "stray", per_class=1)
    (stray / "test" / "bird").mkdir()
    with pytest.raises(DataError, match="bird: is a class that train/ does not have"):
        load_dataset("folder", str(stray), (16, 16, 3))


def test_dataset_config_errors_name_the_key(write_config, image_folder):
    cases = [
        ({**tiny_config(), "data": {"name": "cifar1000"}}, "data.name", "did you mean"),
        ({**tiny_config(), "data": {"name": "folder"}}, "data.dir", "is required"),
        ({**tiny_config(), "data": {"name": "cifar100"}}, "dense.units", "must end in 100"),
    ]
    for content, *fragments in cases:
        result = runner.invoke(app, ["info", "-c", str(write_config(content))])
        assert_one_line_error(result, *fragments)


def test_a_folder_model_whose_units_miss_the_classes_is_refused(
    write_config, image_folder, tmp_path
):
    path = write_config(folder_config(image_folder, units=10))
    for command in (["info"], ["train", "--runs-dir", str(tmp_path / "runs")]):
        result = runner.invoke(app, [*command, "-c", str(path)])
        assert_one_line_error(result, str(path), "model.layers[4].dense.units", "must end in 3")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_every_command_works_on_an_image_folder(write_config, image_folder, tmp_path):
    path = write_config(folder_config(image_folder))
    runs_dir = tmp_path / "runs"
    trained = runner.invoke(app, ["train", "-q", "-c", str(path), "--runs-dir", str(runs_dir)])
    assert trained.exit_code == 0, trained.output
    (run_dir,) = runs_dir.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dataset"] == "folder" and summary["train_images"] == 16
    assert summary["validation"] == "split" and summary["validation_images"] == 2
    assert summary["test_images"] == 6

    evaluated = runner.invoke(app, ["eval", str(run_dir), "--checkpoint", "last"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((run_dir / "eval.json").read_text())
    assert list(report["per_class_accuracy"]) == list(FOLDER_CLASSES)
    assert report["images"] == 6 and len(report["confusion_matrix"]) == 3

    drawn = runner.invoke(app, ["kernels", str(run_dir), "-n", "3"])
    assert drawn.exit_code == 0, drawn.output
    assert (run_dir / "kernels.png").is_file()

    shown = runner.invoke(app, ["data", "-c", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "frog" in shown.stdout and "18" in shown.stdout

    info = runner.invoke(app, ["info", "-c", str(path)])
    assert info.exit_code == 0 and "folder-tiny" in info.stdout, info.output

    bench = runner.invoke(app, ["bench", "model", "-c", str(path), "--repeats", "1", "--json"])
    assert bench.exit_code == 0, bench.output
    assert {row["variant"] for row in json.loads(bench.stdout)} == {
        "article formulation, keras conv2d",  # the tiny model's involution, then a convolution
        "invbench",
    }
