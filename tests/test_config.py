"""Config schema, validation messages and `--set` overrides (no TensorFlow needed)."""

from __future__ import annotations

import pytest
import yaml
from conftest import tiny_config, with_layer, with_train

from involution_bench.config import config_from_dict, dump_config, load_config
from involution_bench.errors import ConfigError


def test_article_configs_resolve_to_the_articles_settings():
    for path in ("configs/conv.yaml", "configs/inv.yaml"):
        config = load_config(path)
        assert config.seed == 42
        assert config.train.epochs == 20
        assert config.train.batch_size == 256
        assert config.train.optimizer == "adam"
        assert config.train.learning_rate == pytest.approx(1e-3)
        assert config.layers[-1] == (
            "dense",
            {"units": 10, "activation": None, "use_bias": True, "name": None},
        )
    kinds = [kind for kind, _ in load_config("configs/inv.yaml").layers]
    assert kinds.count("involution") == 3 and "conv2d" not in kinds


def test_bare_kinds_and_defaults_are_filled_in(write_config):
    config = load_config(write_config(tiny_config()))
    assert config.layers[1] == ("relu", {"name": None})
    assert config.layers[0][1] == {
        "kernel_size": 3,
        "stride": 1,
        "groups": 1,
        "reduction_ratio": 1,
        "name": "inv_1",
    }
    assert config.data.dir is None and config.train.jit_compile == "auto"


def test_dumped_config_reloads_to_the_same_config(write_config):
    config = load_config(write_config(tiny_config()), ["train.epochs=5"])
    again = config_from_dict(yaml.safe_load(dump_config(config)))
    assert again == config


def test_overrides_parse_values_as_yaml(write_config):
    config = load_config(
        write_config(tiny_config()),
        [
            "train.epochs=1",
            "data.limit_train=2048",
            "train.learning_rate=3e-4",
            "model.layers.3.conv2d.filters=8",
            "data.dir=/tmp/cifar",
        ],
    )
    assert config.train.epochs == 1
    assert config.data.limit_train == 2048
    assert config.train.learning_rate == pytest.approx(3e-4)
    assert config.layers[3][1]["filters"] == 8
    assert config.data.dir == "/tmp/cifar"


def test_yaml_float_without_dot_is_accepted(write_config):
    path = write_config(
        "name: t\nmodel: {layers: [flatten, {dense: {units: 10}}]}\ntrain: {learning_rate: 1e-3}\n"
    )
    assert load_config(path).train.learning_rate == pytest.approx(1e-3)


def error_for(write_config, content, overrides=()) -> str:
    path = write_config(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path)) or message.startswith("--set")
    return message


def test_yaml_syntax_error_names_line_and_column(write_config):
    message = error_for(write_config, "name: t\nmodel:\n  layers: [flatten\n")
    assert "line 4, column 1" in message and "invalid YAML" in message


def test_unknown_key_suggests_the_right_one(write_config):
    message = error_for(write_config, with_train(epoch=3))
    assert "train.epoch: unknown key; did you mean 'epochs'?" in message


def test_unknown_top_level_key(write_config):
    config = tiny_config()
    config["trian"] = {}
    assert "trian: unknown key; did you mean 'train'?" in error_for(write_config, config)


def test_unknown_layer_argument(write_config):
    message = error_for(write_config, with_layer(3, {"conv2d": {"filters": 4, "kernal_size": 3}}))
    assert "model.layers[3].conv2d.kernal_size: unknown key; did you mean 'kernel_size'?" in message


def test_wrong_type(write_config):
    message = error_for(write_config, with_train(epochs="ten"))
    assert "train.epochs: input should be a valid integer, got 'ten'" in message


def test_bool_is_not_an_integer(write_config):
    assert "train.batch_size" in error_for(write_config, with_train(batch_size=True))


@pytest.mark.parametrize(
    ("train", "key"),
    [
        ({"epochs": 0}, "train.epochs"),
        ({"batch_size": -1}, "train.batch_size"),
        ({"learning_rate": 0}, "train.learning_rate"),
    ],
)
def test_impossible_training_values(write_config, train, key):
    assert f"{key}: input should be greater than 0" in error_for(write_config, with_train(**train))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"involution": {"kernel_size": 4}}, "model.layers[0].involution.kernel_size: must be odd"),
        (
            {"involution": {"kernel_size": 0}},
            "model.layers[0].involution.kernel_size: input should be greater than 0",
        ),
        (
            {"involution": {"groups": 2}},
            "model.layers[0].involution.groups: 2 does not divide the 3 input channels",
        ),
        ({"involution": {"reduction_ratio": 0}}, "reduction_ratio: input should be greater than 0"),
        ({"convolution": {"filters": 3}}, "model.layers[0]: unknown layer kind 'convolution'"),
        ("flaten", "unknown layer kind 'flaten'; did you mean 'flatten'?"),
        ({"relu": None, "flatten": None}, "model.layers[0]: must be a layer kind, or a mapping"),
    ],
)
def test_impossible_layers(write_config, entry, problem):
    assert problem in error_for(write_config, with_layer(0, entry))


def test_model_must_end_in_ten_outputs(write_config):
    message = error_for(write_config, with_layer(-1, {"dense": {"units": 7}}))
    assert "model.layers[6].dense.units: must end in 10 outputs" in message and "not 7" in message


def test_dense_on_an_image_is_refused(write_config):
    message = error_for(write_config, with_layer(5, {"dense": {"units": 10}}))
    assert "model.layers[5].dense: needs a flat input" in message


def test_missing_required_key(write_config):
    config = tiny_config()
    del config["model"]
    assert "model: is required" in error_for(write_config, config)


def test_override_of_unknown_key(write_config):
    message = error_for(write_config, tiny_config(), ["train.epohcs=3"])
    assert message == "--set: train.epohcs: no such key; did you mean 'epochs'?"


def test_override_value_is_validated(write_config):
    message = error_for(write_config, tiny_config(), ["train.epochs=0"])
    assert "(with --set): train.epochs: input should be greater than 0" in message


def test_override_without_equals_sign(write_config):
    assert "must look like key.path=value" in error_for(
        write_config, tiny_config(), ["train.epochs"]
    )


def test_missing_file():
    with pytest.raises(ConfigError, match=r"nope.yaml: no such file"):
        load_config("nope.yaml")


def test_non_mapping_file(write_config):
    assert "must be a YAML mapping" in error_for(write_config, "- just\n- a list\n")


@pytest.mark.parametrize(
    ("train", "key", "problem"),
    [
        ({"optimizer": "adam", "momentum": 0.9}, "train.momentum", "only applies to optimizer sgd"),
        ({"optimizer": "sgd", "nesterov": True}, "train.nesterov", "needs train.momentum above 0"),
        ({"warmup_epochs": 2}, "train.warmup_epochs", "only applies to schedule cosine"),
        (
            {"schedule": "cosine", "warmup_epochs": 2, "epochs": 2},
            "train.warmup_epochs",
            "no epoch",
        ),
        ({"momentum": 1.0, "optimizer": "sgd"}, "train.momentum", "less than 1"),
        ({"weight_decay": -0.1}, "train.weight_decay", "greater than or equal to 0"),
        ({"label_smoothing": 1.0}, "train.label_smoothing", "less than 1"),
    ],
)
def test_training_options_are_checked(write_config, train, key, problem):
    message = error_for(write_config, with_train(**train))
    assert key in message and problem in message


def test_training_options_have_the_article_defaults(write_config):
    train = load_config(write_config(tiny_config())).train
    assert (train.optimizer, train.momentum, train.nesterov) == ("adam", 0.0, False)
    assert (train.schedule, train.warmup_epochs, train.weight_decay) == ("constant", 0, None)
    assert train.augment is False and train.label_smoothing == 0.0
