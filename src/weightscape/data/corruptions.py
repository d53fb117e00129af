"""CIFAR-10-C style image corruptions (Hendrycks & Dietterich, ICLR 2019).

Re-implementation of the 32x32 variant of ``make_cifar_c.py`` from
github.com/hendrycks/robustness (the CIFAR-10-C parameter tables, severities
1..5) in plain numpy / scipy / PIL / scikit-image.  The PyPI package
``imagecorruptions`` (and the original script's Wand/ImageMagick + OpenCV
dependencies) does not import on this stack, so the operations are rewritten:

* ``motion_blur``: ImageMagick's ``MotionBlurImage`` is emulated by a one-sided
  line kernel (``2*radius+1`` taps with half-Gaussian weights of std ``sigma``)
  at a random angle in [-45, 45] degrees, applied with ``scipy.ndimage``.
* ``defocus_blur``: the aliased disk is anti-aliased with the same 3x3 Gaussian
  that ``cv2.GaussianBlur`` uses; borders use reflect-101 like ``cv2.filter2D``.
* ``elastic_transform``: the random affine (``cv2.warpAffine``) and the smooth
  elastic displacement are composed into a single bilinear resampling; the
  size-relative constants use the actual image side instead of 32.
* ``fog``: the seeded diamond-square plasma fractal is drawn on the next power of
  two >= max(32, H, W) and cropped.

Other constants are kept as published (they were made for 32x32; 28x28 inputs
are close enough).  Grayscale (C=1) images go through colour-space operations
(brightness, saturate) as 3 identical channels and come back as the channel
mean: brightness is then exactly ``clip(x + c)``; saturate is the identity for
severities 1-3 (a gray pixel has zero saturation, which the factors 0.3 / 0.1 /
1.5 keep at zero) and only the additive offsets of severities 4-5 change it.
"""
from __future__ import annotations

from functools import lru_cache, wraps
from io import BytesIO
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from skimage import color

__all__ = ["CORRUPTIONS", "CATEGORIES", "corrupt"]


CORRUPTIONS: dict[str, Callable] = {}  # name -> fn(x float32 HxWxC [0,1], severity, rng)
CATEGORIES: dict[str, str] = {}  # name -> "noise" | "blur" | "weather" | "digital"


def _register(category: str):
    """Register a corruption; the wrapper clips to [0, 1] and returns float32."""
    def deco(fn):
        @wraps(fn)
        def wrapped(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
            return np.clip(fn(x, severity, rng), 0, 1).astype(np.float32, copy=False)
        CORRUPTIONS[fn.__name__], CATEGORIES[fn.__name__] = wrapped, category
        return wrapped
    return deco


# ----------------------------------------------------------------- helpers
def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _pil_apply(x: np.ndarray, fn: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    """Round-trip a float HxWxC image through an 8-bit PIL image."""
    u8 = _to_uint8(x)
    img = Image.fromarray(u8[..., 0] if x.shape[2] == 1 else u8)
    out = np.asarray(fn(img), dtype=np.float32) / 255.0
    return out.reshape(x.shape)


def _hsv_apply(x: np.ndarray, fn: Callable[[np.ndarray], None]) -> np.ndarray:
    """Apply an in-place HSV edit; gray images go through 3 equal channels."""
    rgb = np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x
    hsv = color.rgb2hsv(rgb)
    fn(hsv)
    out = color.hsv2rgb(hsv)
    return out.mean(axis=2, keepdims=True) if x.shape[2] == 1 else out


def _gauss3(sigma: float) -> np.ndarray:
    g = np.exp(-np.arange(-1, 2) ** 2 / (2 * sigma**2))
    return g / g.sum()


@lru_cache(maxsize=None)
def _disk(radius: float, alias_blur: float) -> np.ndarray:
    L = np.arange(-8, 9)
    X, Y = np.meshgrid(L, L)
    d = ((X**2 + Y**2) <= radius**2).astype(np.float64)
    d /= d.sum()
    g = _gauss3(alias_blur)
    for ax in (0, 1):  # cv2.GaussianBlur(ksize=(3, 3)) == separable 3-tap Gaussian
        d = ndi.correlate1d(d, g, axis=ax, mode="mirror")
    r = int(np.abs(np.argwhere(d > 0) - 8).max())  # trim zero border (symmetric)
    return d[8 - r:9 + r, 8 - r:9 + r]


def _motion_kernel(radius: int, sigma: float, angle: float) -> np.ndarray:
    width = 2 * radius + 1
    w = np.exp(-np.arange(width) ** 2 / (2 * sigma**2))
    w /= w.sum()
    a = np.deg2rad(angle)
    dy = np.ceil(np.arange(width) * np.sin(a) - 0.5).astype(int)
    dx = np.ceil(np.arange(width) * np.cos(a) - 0.5).astype(int)
    keep = w > 1e-6 * w[0]  # negligible far taps only enlarge the kernel
    r = int(max(np.abs(dy[keep]).max(), np.abs(dx[keep]).max()))
    k = np.zeros((2 * r + 1, 2 * r + 1))
    np.add.at(k, (r + dy[keep], r + dx[keep]), w[keep])
    return k / k.sum()


def _plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1] (mapsize a power of two)."""
    m = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0
    while step >= 2:
        h = step // 2
        corners = m[0::step, 0::step]
        sq = corners + np.roll(corners, -1, axis=0)
        sq += np.roll(sq, -1, axis=1)
        m[h::step, h::step] = sq / 4 + wibble * rng.uniform(-wibble, wibble, sq.shape)
        dr, ul = m[h::step, h::step], m[0::step, 0::step]
        lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        m[0::step, h::step] = lt / 4 + wibble * rng.uniform(-wibble, wibble, lt.shape)
        tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        m[h::step, 0::step] = tt / 4 + wibble * rng.uniform(-wibble, wibble, tt.shape)
        step, wibble = h, wibble / wibbledecay
    m -= m.min()
    return m / m.max()


def _clipped_zoom(x: np.ndarray, z: float) -> np.ndarray:
    h, w = x.shape[:2]
    ch, cw = int(np.ceil(h / z)), int(np.ceil(w / z))
    top, left = (h - ch) // 2, (w - cw) // 2
    out = ndi.zoom(x[top:top + ch, left:left + cw], (z, z, 1), order=1)
    t, l = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return out[t:t + h, l:l + w]


# ------------------------------------------------------------------ noise
@_register("noise")
def gaussian_noise(x, severity, rng):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    return x + rng.normal(size=x.shape, scale=c)


@_register("noise")
def shot_noise(x, severity, rng):
    c = [500, 250, 100, 75, 50][severity - 1]
    return rng.poisson(x * c) / c


@_register("noise")
def impulse_noise(x, severity, rng):  # == skimage.util.random_noise(mode="s&p")
    c = [0.01, 0.02, 0.03, 0.05, 0.07][severity - 1]
    flip, salt = rng.random(x.shape) <= c, rng.random(x.shape) <= 0.5
    return np.where(flip, salt.astype(x.dtype), x)


@_register("noise")
def speckle_noise(x, severity, rng):
    c = [0.06, 0.1, 0.12, 0.16, 0.2][severity - 1]
    return x + x * rng.normal(size=x.shape, scale=c)


# ------------------------------------------------------------------- blur
@_register("blur")
def defocus_blur(x, severity, rng):
    c = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    return ndi.correlate(x, _disk(*c)[..., None], mode="mirror")


@_register("blur")
def gaussian_blur(x, severity, rng):  # skimage.filters.gaussian defaults
    c = [0.4, 0.6, 0.7, 0.8, 1.0][severity - 1]
    return ndi.gaussian_filter(x, sigma=(c, c, 0), mode="nearest", truncate=4.0)


@_register("blur")
def motion_blur(x, severity, rng):
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    k = _motion_kernel(radius, sigma, rng.uniform(-45, 45))
    return ndi.correlate(x, k[..., None], mode="nearest")


@_register("blur")
def zoom_blur(x, severity, rng):
    top = [1.06, 1.11, 1.16, 1.21, 1.26][severity - 1]
    zooms = np.arange(1, top, 0.01)
    out = x.copy()
    for z in zooms:
        out += _clipped_zoom(x, z)
    return out / (len(zooms) + 1)


# ---------------------------------------------------------------- weather
@_register("weather")
def fog(x, severity, rng):
    c = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    h, w = x.shape[:2]
    size = 1 << int(np.ceil(np.log2(max(32, h, w))))
    max_val = x.max()
    x = x + c[0] * _plasma_fractal(size, c[1], rng)[:h, :w, None]
    return x * max_val / (max_val + c[0])


@_register("weather")
def brightness(x, severity, rng):
    c = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]

    def edit(hsv):
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)

    return _hsv_apply(x, edit)


# ---------------------------------------------------------------- digital
@_register("digital")
def contrast(x, severity, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    means = x.mean(axis=(0, 1), keepdims=True)
    return (x - means) * c + means


@_register("digital")
def saturate(x, severity, rng):
    c = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][severity - 1]

    def edit(hsv):
        hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)

    return _hsv_apply(x, edit)


@_register("digital")
def pixelate(x, severity, rng):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    h, w = x.shape[:2]
    small = (max(1, int(w * c)), max(1, int(h * c)))
    return _pil_apply(x, lambda im: im.resize(small, Image.BOX).resize((w, h), Image.BOX))


@_register("digital")
def jpeg_compression(x, severity, rng):
    q = [80, 65, 58, 50, 40][severity - 1]

    def jpeg(im):
        buf = BytesIO()
        im.save(buf, "JPEG", quality=q)
        buf.seek(0)
        return Image.open(buf).convert(im.mode)

    return _pil_apply(x, jpeg)


@_register("digital")
def elastic_transform(x, severity, rng):
    h, w = x.shape[:2]
    s = min(h, w)  # the published constants are fractions of IMSIZE=32
    alpha, sigma, affine = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                            (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)][severity - 1]
    alpha, sigma, affine = alpha * s, sigma * s, affine * s
    # random affine from 3 jittered points (cv2.getAffineTransform, (x, y) order)
    centre, sq = np.array([w // 2, h // 2], float), s // 3
    p1 = np.array([centre + sq, [centre[0] + sq, centre[1] - sq], centre - sq])
    p2 = p1 + rng.uniform(-affine, affine, size=p1.shape)
    M = np.linalg.solve(np.c_[p1, np.ones(3)], p2).T  # dst = M @ [x, y, 1]
    # elastic displacement field (skimage gaussian, mode reflect, truncate 3)
    dx, dy = (ndi.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect",
                                  truncate=3) * alpha for _ in range(2))
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    # warpAffine samples src at M^-1(p); the elastic map then samples at p + d
    src = np.linalg.solve(M[:, :2], np.stack([(xx + dx).ravel(), (yy + dy).ravel()])
                          - M[:, 2:])
    coords = src[::-1].reshape(2, h, w)  # (row, col)
    return np.stack([ndi.map_coordinates(x[..., ch], coords, order=1, mode="mirror")
                     for ch in range(x.shape[2])], axis=-1)





def corrupt(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt a batch of uint8 images ``(N, H, W, C)``, ``C`` in {1, 3}.

    Returns uint8 of the same shape.  Image ``i`` uses its own generator from
    ``np.random.SeedSequence(seed).spawn(N)[i]``, so the result is deterministic
    for a given seed and does not depend on the batch it sits in.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; allowed: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 (N, H, W, C) with C in {{1, 3}}, "
                         f"got {images.dtype} {images.shape}")
    fn, sev = CORRUPTIONS[name], int(severity)
    out = np.empty_like(images)
    for i, ss in enumerate(np.random.SeedSequence(seed).spawn(len(images))):
        x = images[i].astype(np.float32) / 255.0
        out[i] = _to_uint8(fn(x, sev, np.random.default_rng(ss)))
    return out
