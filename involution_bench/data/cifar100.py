"""`cifar100`: CIFAR-100, 50,000 training and 10,000 test images of 100 classes, 32x32.

Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
The labels are the 100 fine classes (not the 20 coarse superclasses).
"""

from __future__ import annotations

from pathlib import Path

from involution_bench.data.base import Dataset, ImageData

# The fine label names, in label order, as the dataset's `meta` file lists them.
CLASS_NAMES = (
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
)


def _layout():
    from involution_bench.data.cifar_files import CifarLayout

    return CifarLayout(
        title="CIFAR-100",
        folder="cifar-100-python",
        archive="cifar-100-python.tar.gz",
        train_files=("train",),
        test_file="test",
        label_key=b"fine_labels",
        classes=len(CLASS_NAMES),
        keras_module="cifar100",
        keras_options=(("label_mode", "fine"),),
    )


def load(data_dir: Path | None, input_shape: tuple[int, int, int]) -> ImageData:
    from involution_bench.data.cifar_files import load_image_data

    return load_image_data(_layout(), data_dir, CLASS_NAMES)


DATASET = Dataset(
    name="cifar100",
    title="CIFAR-100",
    summary="CIFAR-100: 50,000 + 10,000 images, 32x32x3, 100 fine classes",
    load=load,
    image_shape=(32, 32, 3),
    class_names=CLASS_NAMES,
    layout="cifar-100-python/ or cifar-100-python.tar.gz",
)
