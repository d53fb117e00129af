"""The canonical on-disk image format every stage reads: one `.npz` per split with `images` (uint8, N x H x W x C)
and `labels` (int64, N), plus `classes.json` next to them. Real, corrupted and (later) synthetic data share it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weightscape.io import atomic_path


def save_split(path: str | Path, images: np.ndarray, labels: np.ndarray, **extra: np.ndarray) -> None:
    """Write one split atomically after checking the format (so a bad reader fails here, not in training)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{path}: images must be uint8 (N, H, W, 1|3), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{path}: {labels.shape[0]} labels for {images.shape[0]} images")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file handle keeps numpy from appending a second .npz suffix
            np.savez(fh, images=images, labels=labels.astype(np.int64), **extra)


def load_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 NHWC, labels int64) of one split."""
    with np.load(path) as archive:
        return archive["images"], archive["labels"]


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator,
                     exclude: np.ndarray | None = None) -> np.ndarray:
    """`per_class` random indices of every class (sorted), never one listed in `exclude`."""
    available = np.ones(len(labels), bool)
    if exclude is not None:
        available[exclude] = False
    chosen = []
    for label in np.unique(labels):
        candidates = np.flatnonzero((labels == label) & available)
        if len(candidates) < per_class:
            raise ValueError(f"class {label} has {len(candidates)} images, {per_class} requested")
        chosen.append(rng.choice(candidates, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def seed_subset(images: np.ndarray, labels: np.ndarray, *, per_class: int, split_seed: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training subset of one seed (datasets[].resample_per_seed): `per_class` images of every class of the
    pool (images, labels), drawn with (split_seed, seed), in pool order."""
    idx = balanced_indices(labels, per_class, np.random.default_rng([split_seed, seed]))
    return images[idx], labels[idx]


def training_split(train_npz: str | Path, subset: dict | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seed's training split: train.npz as it is, or (subset = Dataset.subset_params, the file pool.npz) the
    seed's own draw of it."""
    images, labels = load_split(train_npz)
    return seed_subset(images, labels, seed=seed, **subset) if subset else (images, labels)
