"""Real + synthetic training sets, the two schemes of Ba et al. (both class-balanced and seeded):

- replace: the real set's size is kept; per class, round(p * n_c) real images and the rest synthetic;
- add: every real image, plus round(p * n_c) synthetic images per class.
"""

from __future__ import annotations

import math

import numpy as np


def share(p: float, n: int) -> int:
    """round(p * n) with halves rounded up (Python's round() would round 0.5 * 5 down to 2)."""
    return int(math.floor(p * n + 0.5))


def mix_counts(scheme: str, p: float, n_real: int) -> tuple[int, int]:
    """(real, synthetic) images of one class that has `n_real` real training images."""
    if scheme == "replace":
        real = share(p, n_real)
        return real, n_real - real
    if scheme == "add":
        return n_real, share(p, n_real)
    raise ValueError(f"mix scheme {scheme!r} is not one of: replace, add")


def synthetic_needed(scheme: str, p: float, n_real: int) -> int:
    return mix_counts(scheme, p, n_real)[1]


def mix_training_set(real_images: np.ndarray, real_labels: np.ndarray, synthetic_images: np.ndarray,
                     synthetic_labels: np.ndarray, scheme: str, p: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, is_synthetic) of the mixed set, classes in the real set's order, real before synthetic.

    Which real and which synthetic images are kept is drawn with `seed`, per class.
    """
    if real_images.shape[1:] != synthetic_images.shape[1:]:
        raise ValueError(f"synthetic images are {synthetic_images.shape[1:]}, real ones {real_images.shape[1:]} "
                         f"(H, W, C); they must match")
    rng = np.random.default_rng(seed)
    images, labels, synthetic = [], [], []
    for label in np.unique(real_labels):
        real_idx = np.flatnonzero(real_labels == label)
        synth_idx = np.flatnonzero(synthetic_labels == label)
        n_real, n_synth = mix_counts(scheme, p, len(real_idx))
        if n_synth > len(synth_idx):
            raise ValueError(f"class {label}: {scheme} p={p:g} needs {n_synth} synthetic images, the generator "
                             f"made {len(synth_idx)}")
        keep_real = np.sort(rng.choice(real_idx, n_real, replace=False))
        keep_synth = np.sort(rng.choice(synth_idx, n_synth, replace=False))
        images += [real_images[keep_real], synthetic_images[keep_synth]]
        labels += [real_labels[keep_real], synthetic_labels[keep_synth]]
        synthetic += [np.zeros(n_real, bool), np.ones(n_synth, bool)]
    return np.concatenate(images), np.concatenate(labels).astype(np.int64), np.concatenate(synthetic)
