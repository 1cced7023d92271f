"""The CIFAR-10-C-style corruptions: deterministic, shape-keeping, graded by severity,
the noise constants as measured, and the vectorized helpers equal to plain loops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from involution_bench.robustness.corruptions import (
    CORRUPTIONS,
    NAMES,
    SEVERITIES,
    available,
    corrupt,
    noise,
    sampling,
)
from involution_bench.robustness.corruptions.weather import FROST_FILES, load_frost_textures

GENERATED = [c.name for c in CORRUPTIONS if not c.needs_textures]


def natural_images(count: int = 12, size: int = 32, channels: int = 3, seed: int = 0):
    """Smooth images with edges, unlike each other: gradients, a disc and a bar each."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(count):
        colour = rng.uniform(0.2, 0.8, size=(1, 1, channels))
        tilt = rng.uniform(-0.3, 0.3, size=2)
        image = colour + tilt[0] * (y - 0.5)[..., None] + tilt[1] * (x - 0.5)[..., None]
        cy, cx, radius = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
        disc = ((y - cy) ** 2 + (x - cx) ** 2) < radius**2
        image = np.where(disc[..., None], 1 - image, image)
        row = rng.integers(2, size - 4)
        image[row : row + 2] = rng.uniform(0, 1, size=channels)
        images.append(np.clip(image, 0, 1))
    return (np.stack(images) * 255).astype(np.uint8)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_fifteen_corruptions_in_cifar_10_c_order_frost_needs_its_photographs():
    assert len(NAMES) == 15 and NAMES[:3] == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert NAMES[-1] == "jpeg_compression"
    assert [c.name for c in available(None)] == GENERATED and len(GENERATED) == 14


@pytest.mark.parametrize("name", GENERATED)
def test_a_corruption_is_deterministic_and_keeps_shape_and_dtype(name):
    images = natural_images()
    first = corrupt(images, name, 3, seed=5)
    assert first.shape == images.shape and first.dtype == np.uint8
    assert np.array_equal(first, corrupt(images, name, 3, seed=5))
    other = corrupt(images, name, 3, seed=6)
    fixed = ("zoom_blur", "defocus_blur", "brightness", "contrast", "pixelate", "jpeg_compression")
    random = name not in fixed
    assert random == (not np.array_equal(first, other))  # only the random ones vary with it


@pytest.mark.parametrize("name", GENERATED)
@pytest.mark.parametrize("shape", [(24, 24, 3), (32, 32, 1), (40, 40, 3)])
def test_a_corruption_works_at_other_sizes_and_in_grey(name, shape):
    images = natural_images(4, shape[0], shape[2])
    out = corrupt(images, name, 5)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert distance(out, images) > 0


@pytest.mark.parametrize("name", GENERATED)
def test_severity_one_stays_recognisable_and_the_distance_grows(name):
    images = natural_images()
    distances = [distance(corrupt(images, name, s), images) for s in SEVERITIES]
    mild = corrupt(images, name, 1).astype(np.float64)
    own = np.abs(mild - images).mean(axis=(1, 2, 3))
    others = np.abs(mild - np.roll(images, 1, axis=0)).mean(axis=(1, 2, 3))
    assert (own < others).all()  # closer to its own clean image than to any other
    if name == "elastic_transform":
        # The reference's constants trade its affine jitter (0.08 -> 0.03 of the side)
        # for displacement (0 -> 0.1): pixel distance falls with severity, as there.
        assert distances[0] > distances[-1]
    elif name == "glass_blur":
        # Severities 1-3 move pixels once, 4-5 twice: the distance grows in two steps.
        assert max(distances[:3]) < min(distances[3:])
    else:
        assert distances == sorted(distances) and distances[-1] > distances[0], distances


@pytest.mark.parametrize("severity", SEVERITIES)
def test_the_noise_constants_are_what_is_measured(severity):
    grey = np.full((40, 32, 32, 3), 128, dtype=np.uint8)  # far from 0 and 255: no clipping
    level = 128 / 255
    gaussian = corrupt(grey, "gaussian_noise", severity).astype(np.float64) / 255 - level
    # the reference cuts to uint8 towards zero: half a level lower on average
    assert gaussian.std() == pytest.approx(noise.GAUSSIAN[severity - 1], rel=0.03)
    shot = corrupt(grey, "shot_noise", severity).astype(np.float64) / 255 - level
    photons = noise.SHOT[severity - 1]
    assert shot.std() == pytest.approx(np.sqrt(level / photons), rel=0.03)
    impulse = corrupt(grey, "impulse_noise", severity)
    replaced = (impulse != 128).mean()
    assert replaced == pytest.approx(noise.IMPULSE[severity - 1], rel=0.08)
    assert set(np.unique(impulse)) <= {0, 128, 255}


def test_clipped_zoom_equals_scipy_zoom():
    rng = np.random.default_rng(1)
    images = rng.random((3, 32, 32, 3)).astype(np.float32)
    for factor in [*np.arange(1, 1.26, 0.01), 1.75, 2.25]:
        crop = int(np.ceil(32 / factor))
        top = (32 - crop) // 2
        zoomed = ndimage.zoom(
            images[:, top : top + crop, top : top + crop], (1, factor, factor, 1), order=1
        )
        trim = (zoomed.shape[1] - 32) // 2
        expected = zoomed[:, trim : trim + 32, trim : trim + 32]
        np.testing.assert_allclose(sampling.clipped_zoom(images, factor), expected, atol=1e-5)


def test_reflect101_correlation_equals_scipy_mirror_mode():
    rng = np.random.default_rng(2)
    images, kernel = rng.random((2, 20, 20, 3)), rng.random((17, 17))
    expected = np.stack(
        [
            np.stack(
                [ndimage.correlate(image[..., c], kernel, mode="mirror") for c in range(3)], -1
            )
            for image in images
        ]
    )
    np.testing.assert_allclose(sampling.correlate_reflect101(images, kernel), expected, atol=1e-9)


def test_glass_blur_equals_the_reference_loop_with_the_same_draws():
    """The reference's loop, copy semantics and visiting order included, fed the draws
    the vectorized version makes."""
    from involution_bench.robustness.corruptions import blur

    images = natural_images(3)
    sigma, delta, iterations = blur.GLASS[3]  # two iterations
    rng = np.random.default_rng(9)
    vectorized = blur.glass_blur(images, 4, rng)

    rng = np.random.default_rng(9)
    x = np.uint8(sampling.gaussian(images / 255.0, sigma) * 255)
    n, height, width, _ = x.shape
    rows = np.arange(delta + 1, height - delta + 1)
    cols = np.arange(delta + 1, width - delta + 1)
    for _ in range(iterations):
        steps = rng.integers(-delta, delta, size=(2, n, rows.size, cols.size))
        for index in range(n):
            image = x[index]
            for h in range(height - delta, delta, -1):
                for w in range(width - delta, delta, -1):
                    dy = steps[0, index, h - rows[0], w - cols[0]]
                    dx = steps[1, index, h - rows[0], w - cols[0]]
                    # the reference's line, whose views make it a copy
                    image[h, w], image[h + dy, w + dx] = image[h + dy, w + dx], image[h, w]
    looped = np.clip(sampling.gaussian(x / 255.0, sigma), 0, 1) * 255
    np.testing.assert_allclose(vectorized, looped)


def test_motion_blur_equals_imagemagicks_per_pixel_sum():
    rng = np.random.default_rng(3)
    images = rng.random((2, 12, 12, 1)) * 255
    angles = np.array([17.0, -40.0])
    radius, sigma = 6, 2.0
    out = sampling.motion_blur(images, radius, sigma, angles)
    width = 2 * radius + 1
    weights = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    for index, angle in enumerate(angles):
        expected = np.zeros((12, 12))
        point_x, point_y = width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle))
        hypot = np.hypot(point_x, point_y)
        for y in range(12):
            for x in range(12):
                for i, weight in enumerate(weights):
                    ox = int(np.ceil(i * point_y / hypot - 0.5))
                    oy = int(np.ceil(i * point_x / hypot - 0.5))
                    source = images[index, min(max(y + oy, 0), 11), min(max(x + ox, 0), 11), 0]
                    expected[y, x] += weight * source
        np.testing.assert_allclose(out[index, ..., 0], expected, atol=1e-9)


def test_frost_blends_the_reference_photographs_when_given(tmp_path):
    rng = np.random.default_rng(4)
    for name in FROST_FILES:
        texture = rng.integers(150, 255, size=(400, 500, 3), dtype=np.uint8)
        Image.fromarray(texture).save(tmp_path / name)
    textures = load_frost_textures(tmp_path)
    assert [t.shape for t in textures] == [(80, 100, 3)] * 5  # scaled by 0.2, as there
    images = natural_images(4)
    first = corrupt(images, "frost", 2, frost_textures=textures)
    assert np.array_equal(first, corrupt(images, "frost", 2, frost_textures=textures))
    assert distance(first, images) < distance(
        corrupt(images, "frost", 5, frost_textures=textures), images
    )
    assert [c.name for c in available(tmp_path)] == list(NAMES)
    with pytest.raises(ValueError, match="frost"):
        corrupt(images, "frost", 1)
