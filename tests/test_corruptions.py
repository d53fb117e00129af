"""Tests for weightscape.data.corruptions (CIFAR-10-C style corruptions)."""
import numpy as np
import pytest
from skimage import data, transform

from weightscape.data.corruptions import CATEGORIES, CORRUPTIONS, corrupt

NAMES = sorted(CORRUPTIONS)
SEVERITIES = [1, 2, 3, 4, 5]
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise",
          "motion_blur", "fog", "elastic_transform"}
REQUIRED = {
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur",
    "gaussian_blur", "motion_blur", "zoom_blur", "fog", "brightness", "contrast",
    "saturate", "pixelate", "jpeg_compression", "elastic_transform",
}
# Where the CIFAR-10-C constants do NOT give a mean |corrupted - clean| that grows
# with severity.  Each entry is checked below to really behave as described.
NON_MONOTONE = {
    ("elastic_transform", "gray"): "the random affine jitter shrinks from 0.08*size (sev 1, "
                                   "no elastic part) to 0.03*size (sev 5) and dominates the "
                                   "pixel difference; only the small elastic field grows",
    ("elastic_transform", "rgb"): "same as gray",
    ("saturate", "rgb"): "sev 1-2 desaturate (x0.3, x0.1), sev 3-5 oversaturate (x1.5, x2, "
                         "x2.5): sev 2 is farther from the clean image than sev 3",
}
# A gray pixel has saturation 0; the factors of sev 1-3 keep it 0, so saturate is
# the identity on gray images there (only the additive offsets of sev 4-5 act).
IDENTITY_ON_GRAY = {("saturate", 1), ("saturate", 2), ("saturate", 3)}


def _resize(img, shape):
    return np.round(transform.resize(img, shape, anti_aliasing=True) * 255).astype(np.uint8)


def _crops(img, n, size, shape, seed):
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, img.shape[0] - size, n)
    xs = rng.integers(0, img.shape[1] - size, n)
    return np.stack([_resize(img[y:y + size, x:x + size], shape) for y, x in zip(ys, xs)])


@pytest.fixture(scope="module")
def gray():  # Fashion-MNIST-like: (8, 28, 28, 1)
    return _crops(data.camera(), 8, 256, (28, 28), seed=0)[..., None]


@pytest.fixture(scope="module")
def rgb():  # CIFAR-like: (8, 32, 32, 3)
    return _crops(data.astronaut(), 8, 256, (32, 32), seed=1)


@pytest.fixture(scope="module", params=["gray", "rgb"])
def images(request, gray, rgb):
    return request.param, {"gray": gray, "rgb": rgb}[request.param]


def test_registry():
    assert REQUIRED <= set(CORRUPTIONS)
    assert set(CATEGORIES) == set(CORRUPTIONS)
    assert set(CATEGORIES.values()) == {"noise", "blur", "weather", "digital"}
    assert RANDOM <= set(CORRUPTIONS)


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_changes(images, name, severity):
    kind, x = images
    y = corrupt(x, name, severity, seed=0)
    assert y.shape == x.shape and y.dtype == np.uint8
    if kind == "gray" and (name, severity) in IDENTITY_ON_GRAY:
        np.testing.assert_array_equal(y, x)
    else:
        assert np.abs(y.astype(int) - x).mean() > 0.1, f"{name} s{severity} ~ no-op on {kind}"


@pytest.mark.parametrize("name", NAMES)
def test_function_interface(rgb, name):
    x = rgb[0].astype(np.float32) / 255
    for severity in SEVERITIES:
        y = CORRUPTIONS[name](x, severity, np.random.default_rng(0))
        assert y.shape == x.shape and y.dtype == np.float32
        assert 0.0 <= y.min() and y.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_determinism(images, name):
    _, x = images
    a, b = corrupt(x, name, 3, seed=7), corrupt(x, name, 3, seed=7)
    np.testing.assert_array_equal(a, b)
    c = corrupt(x, name, 3, seed=8)
    if name in RANDOM:
        assert not np.array_equal(a, c), f"{name}: seed has no effect"
    else:
        np.testing.assert_array_equal(a, c)
    # each image has its own generator: the result does not depend on the batch
    np.testing.assert_array_equal(corrupt(x[:3], name, 3, seed=7), a[:3])
    if name in RANDOM:  # and images in a batch get different noise
        d = corrupt(np.repeat(x[:1], 2, axis=0), name, 3, seed=7)
        assert not np.array_equal(d[0], d[1])


@pytest.mark.parametrize("name", NAMES)
def test_severity_monotone(images, name):
    kind, x = images
    mad = [np.abs(corrupt(x, name, s, seed=3).astype(float) - x).mean() for s in SEVERITIES]
    steps = [(s + 1, lo, hi) for s, (lo, hi) in enumerate(zip(mad, mad[1:]), start=1)]
    drops = [(s, lo, hi) for s, lo, hi in steps if hi < lo - (0.05 + 0.02 * lo)]
    if (name, kind) in NON_MONOTONE:
        assert drops, f"{name}/{kind} listed as non-monotone but is monotone: {mad}"
        if name == "elastic_transform":
            assert mad[0] > mad[-1]
        if name == "saturate":
            assert mad[1] > mad[2]
    else:
        assert not drops, f"{name}/{kind}: mean |diff| per severity {np.round(mad, 2)}"
        assert mad[-1] > mad[0], f"{name}/{kind}: {np.round(mad, 2)}"


def test_gray_color_ops(gray):
    x = gray.astype(np.float32) / 255
    for s, c in zip(SEVERITIES, [0.05, 0.1, 0.15, 0.2, 0.3]):
        expected = np.round(np.clip(x + c, 0, 1) * 255)
        assert np.abs(corrupt(gray, "brightness", s, 0) - expected).max() <= 1
    # sev 4-5 add saturation 0.1 / 0.2 (hue 0 = red); back to gray that darkens
    for s in (4, 5):
        assert corrupt(gray, "saturate", s, 0).astype(int).sum() < gray.astype(int).sum()


@pytest.mark.parametrize("shape", [(2, 24, 40, 3), (2, 64, 64, 1), (1, 8, 8, 1)])
def test_other_sizes(shape):
    rng = np.random.default_rng(0)
    img = _resize(data.astronaut(), shape[1:3])
    x = img if shape[3] == 3 else img.mean(axis=2, keepdims=True).astype(np.uint8)
    x = np.stack([x] * shape[0]) // rng.integers(1, 3, size=(shape[0], 1, 1, 1)).astype(np.uint8)
    for name in NAMES:
        y = corrupt(x, name, 5, seed=0)
        assert y.shape == x.shape and y.dtype == np.uint8


def test_bad_arguments(rgb):
    with pytest.raises(ValueError, match="frost") as err:
        corrupt(rgb, "frost", 1, 0)
    assert all(n in str(err.value) for n in NAMES)
    for bad in (0, 6, -1, 2.5, "3"):
        with pytest.raises(ValueError, match=repr(bad).replace(".", r"\.")):
            corrupt(rgb, "fog", bad, 0)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(rgb.astype(np.float32), "fog", 1, 0)
    with pytest.raises(ValueError, match="C in"):
        corrupt(rgb[..., :2], "fog", 1, 0)
    with pytest.raises(ValueError):
        corrupt(rgb[0], "fog", 1, 0)
