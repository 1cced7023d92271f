"""Loading CIFAR-10 from offline copies, refusing bad ones, and the tf.data pipelines."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest
from conftest import TEST_IMAGES, TRAIN_PER_BATCH, load_cifar10

from involution_bench.data import DATA_DIR_ENV, resolve_data_dir
from involution_bench.data import pipelines as pipeline_module
from involution_bench.data.pipelines import (
    evaluation_batch_size,
    image_batches,
    make_datasets,
    usable_cores,
)
from involution_bench.data.split import with_validation
from involution_bench.errors import DataError


def test_folder_layout_loads_as_uint8_nhwc(cifar_dir):
    data = load_cifar10(cifar_dir)
    assert data.x_train.shape == (5 * TRAIN_PER_BATCH, 32, 32, 3)
    assert data.x_test.shape == (TEST_IMAGES, 32, 32, 3)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int32
    raw = pickle.loads((cifar_dir / "cifar-10-batches-py" / "data_batch_2").read_bytes())
    row = raw[b"data"][3]
    image = data.x_train[TRAIN_PER_BATCH + 3]
    # A row holds 1024 red, then 1024 green, then 1024 blue values, row-major.
    assert image[0, 0, 0] == row[0] and image[0, 1, 0] == row[1]
    assert image[1, 0, 1] == row[1024 + 32] and image[31, 31, 2] == row[3071]
    assert data.y_train[TRAIN_PER_BATCH + 3] == raw[b"labels"][3]


def test_loaded_data_is_kept_read_only_for_the_next_run(cifar_dir):
    data = load_cifar10(cifar_dir)
    assert load_cifar10(cifar_dir) is data  # several configs decode the files once
    with pytest.raises(ValueError, match="read-only"):
        data.x_train[0, 0, 0, 0] = 1


def test_archive_layout_gives_the_same_arrays(cifar_dir, cifar_archive_dir):
    folder, archive = load_cifar10(cifar_dir), load_cifar10(cifar_archive_dir)
    np.testing.assert_array_equal(folder.x_train, archive.x_train)
    np.testing.assert_array_equal(folder.y_test, archive.y_test)
    assert archive.source.endswith("cifar-10-python.tar.gz")


def test_limits_take_the_first_images(cifar_dir):
    data = load_cifar10(cifar_dir)
    limited = data.limited(10, 5)
    assert len(limited.x_train) == 10 and len(limited.y_test) == 5
    np.testing.assert_array_equal(limited.x_train, data.x_train[:10])


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert resolve_data_dir(None) is None
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("/elsewhere") == tmp_path.__class__("/elsewhere")


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="data folder does not exist"):
        load_cifar10(tmp_path / "absent")


def test_folder_without_cifar(tmp_path):
    with pytest.raises(DataError, match="holds neither cifar-10-batches-py/ nor"):
        load_cifar10(tmp_path)


def test_incomplete_folder(cifar_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(cifar_dir, copy)
    (copy / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3: missing batch file"):
        load_cifar10(copy)


def test_truncated_batch_file(cifar_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(cifar_dir, copy)
    batch = copy / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DataError, match="test_batch: truncated or corrupted batch file"):
        load_cifar10(copy)


def test_truncated_archive(cifar_archive_dir, tmp_path):
    archive = cifar_archive_dir / "cifar-10-python.tar.gz"
    (tmp_path / archive.name).write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz: truncated or corrupted archive"):
        load_cifar10(tmp_path)


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_that_would_run_code_is_refused(cifar_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(cifar_dir, copy)
    (copy / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(DataError, match=r"refusing to load builtins.print"):
        load_cifar10(copy)
    assert "must never run" not in capsys.readouterr().out


def take_epochs(train, steps_per_epoch, epochs):
    """The stream's batches, as (images, labels) lists, one list per epoch."""
    batches = [(x.numpy(), y.numpy()) for x, y in train.take(steps_per_epoch * epochs)]
    return [batches[i : i + steps_per_epoch] for i in range(0, len(batches), steps_per_epoch)]


def test_pipeline_scales_batches_and_reshuffles_each_epoch(cifar_dir):
    data = with_validation(load_cifar10(cifar_dir), "test", split_seed=0)
    pipelines = make_datasets(data, batch_size=32, seed=3)
    assert pipelines.steps_per_epoch == 3
    first_epoch, second_epoch = take_epochs(pipelines.train, 3, 2)
    images = first_epoch[0][0]
    assert images.dtype == np.float32 and images.shape == (32, 32, 32, 3)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert [len(y) for _, y in first_epoch] == [32, 32, 16]  # no batch straddles two epochs
    epoch_labels = np.concatenate([y for _, y in first_epoch])
    assert sorted(epoch_labels) == sorted(data.y_train)  # every image once per epoch
    assert not np.array_equal(epoch_labels, np.concatenate([y for _, y in second_epoch]))
    # Images travel with their labels.
    pixels = np.rint(images[0] * 255).astype(np.uint8)
    index = int(np.flatnonzero((data.x_train == pixels).all(axis=(1, 2, 3)))[0])
    assert data.y_train[index] == first_epoch[0][1][0]
    # The same seed gives the same order in a new pipeline.
    again = make_datasets(data, batch_size=32, seed=3)
    (repeat,) = take_epochs(again.train, 3, 1)
    np.testing.assert_array_equal(np.concatenate([y for _, y in repeat]), epoch_labels)
    # Validation keeps the file order and covers the whole test split.
    validation = pipelines.validation
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in validation]), data.y_test)
    x0 = next(iter(validation))[0].numpy()[0]
    np.testing.assert_allclose(x0, data.x_test[0] / 255.0, rtol=1e-6)


def test_evaluation_batches_hold_a_fixed_number_of_pixels_and_never_fewer_images():
    assert evaluation_batch_size((32, 32, 3)) == 1024
    assert evaluation_batch_size((64, 64, 3)) == 256  # 1,024 / 4, at the floor
    assert evaluation_batch_size((224, 224, 3)) == 256  # never under the floor
    assert evaluation_batch_size((32, 32, 3), at_least=2048) == 2048
    assert evaluation_batch_size((16, 16, 1), at_least=8) == 4096


def test_validation_runs_in_evaluation_batches_with_the_same_metrics(cifar_dir, monkeypatch):
    import keras

    data = with_validation(load_cifar10(cifar_dir), "test", split_seed=0)
    monkeypatch.setattr(pipeline_module, "EVALUATION_PIXELS", 10 * 32 * 32)
    small = make_datasets(data, batch_size=4, seed=3).validation
    assert [len(y) for _, y in small] == [10, 10, 4]  # 10 images a batch, not the 4 of training
    wide = make_datasets(data, batch_size=16, seed=3).validation
    assert [len(y) for _, y in wide] == [16, 8]  # never fewer than training's
    one = make_datasets(data, batch_size=TEST_IMAGES, seed=3).validation
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
         keras.layers.Dense(10)]
    )  # fmt: skip
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    scores = [model.evaluate(batches, verbose=0, return_dict=True) for batches in (small, one)]
    assert scores[0]["accuracy"] == scores[1]["accuracy"]
    assert np.isclose(scores[0]["loss"], scores[1]["loss"], rtol=1e-5)


def test_passes_that_end_do_not_autotune_and_training_does(cifar_dir):
    # Freeing an autotuned iterator waits on TensorFlow's tuning thread after a pass.
    data = with_validation(load_cifar10(cifar_dir), "test", split_seed=0)
    pipelines = make_datasets(data, batch_size=4, seed=3)
    assert pipelines.validation.options().autotune.enabled is False
    assert pipelines.train.options().autotune.enabled is not False
    images = np.random.default_rng(0).random((5, 4, 4, 3), dtype=np.float32)
    batches = image_batches(images, 2)
    assert batches.options().autotune.enabled is False
    out = [b.numpy() for b in batches]
    assert [len(b) for b in out] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(out), images)  # in order, unchanged
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_the_robustness_predict_gives_the_models_logits_in_order():
    import keras

    from involution_bench.robustness.run import model_predict

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    images = np.random.default_rng(1).random((300, 4, 4, 3), dtype=np.float32)
    np.testing.assert_allclose(model_predict(model)(images), model(images), rtol=1e-5, atol=1e-6)


def test_a_resumed_pipeline_gives_the_epochs_it_would_have(cifar_dir):
    data = with_validation(load_cifar10(cifar_dir), "test", split_seed=0)
    full = take_epochs(make_datasets(data, batch_size=32, seed=3).train, 3, 3)
    resumed = take_epochs(make_datasets(data, batch_size=32, seed=3, first_epoch=2).train, 3, 1)
    for (x, y), (x_again, y_again) in zip(full[2], resumed[0], strict=True):
        np.testing.assert_array_equal(x, x_again)
        np.testing.assert_array_equal(y, y_again)


def test_augmentation_crops_and_flips_each_image_reproducibly(cifar_dir):
    data = with_validation(load_cifar10(cifar_dir), "test", split_seed=0)
    plain = take_epochs(make_datasets(data, batch_size=32, seed=3).train, 3, 2)
    augmented = take_epochs(make_datasets(data, batch_size=32, seed=3, augment=True).train, 3, 2)
    again = take_epochs(make_datasets(data, batch_size=32, seed=3, augment=True).train, 3, 2)
    changed = 0
    for epoch, epoch_again, epoch_plain in zip(augmented, again, plain, strict=True):
        for (x, y), (x_again, _), (x_plain, y_plain) in zip(
            epoch, epoch_again, epoch_plain, strict=True
        ):
            np.testing.assert_array_equal(y, y_plain)  # same images, same order
            np.testing.assert_array_equal(x, x_again)  # seeded by (seed, epoch, batch)
            padded = np.pad(x_plain, ((0, 0), (4, 4), (4, 4), (0, 0)))
            for image, source in zip(x, padded, strict=True):
                views = [source[r : r + 32, c : c + 32] for r in range(9) for c in range(9)]
                assert any(
                    np.array_equal(image, view) or np.array_equal(image, view[:, ::-1])
                    for view in views
                )
            changed += int(not np.array_equal(x, x_plain))
    assert changed == 6  # every batch differs from the plain one
    # The two epochs are augmented differently.
    assert not np.array_equal(augmented[0][0][0], augmented[1][0][0])


def test_augmentation_is_a_crop_of_the_padded_image_and_a_flip_in_any_dtype():
    """Against a plain per-image crop and flip, with the draws the batch makes; uint8
    (as the pipeline augments) and float32 agree once scaled."""
    import tensorflow as tf

    from involution_bench.data.pipelines import augment_batch

    images = np.random.default_rng(3).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    seed = tf.constant([11, 4], tf.int64)
    offsets = tf.random.stateless_uniform([16, 2], seed=seed, maxval=9, dtype=tf.int32).numpy()
    flips = (
        tf.random.stateless_uniform([16], seed=seed + tf.constant([0, 1], tf.int64)) < 0.5
    ).numpy()
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    expected = np.stack(
        [
            (crop[:, ::-1] if flip else crop)
            for crop, flip in (
                (padded[i, r : r + 32, c : c + 32], flips[i]) for i, (r, c) in enumerate(offsets)
            )
        ]
    )
    out = augment_batch(tf.constant(images), seed).numpy()
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    scaled = augment_batch(tf.constant(images, tf.float32) / 255.0, seed).numpy()
    np.testing.assert_array_equal(scaled, expected.astype(np.float32) / 255.0)
    assert 0 < flips.sum() < 16 and len({tuple(o) for o in offsets}) > 1
