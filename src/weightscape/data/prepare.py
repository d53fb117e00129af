"""The data stage: raw source -> seeded, class-balanced train / val / test splits in the canonical format."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from weightscape.data.canonical import balanced_indices, save_split
from weightscape.data.sources import SOURCES
from weightscape.io import write_json
from weightscape.settings import Dataset

log = logging.getLogger(__name__)


def prepare_dataset(dataset: Dataset, out_dir: str | Path) -> dict:
    """Write train.npz, val.npz, test.npz and classes.json for one config `datasets[]` entry (and pool.npz, the
    images each seed draws its own training subset from, with resample_per_seed); return the summary."""
    out_dir = Path(out_dir)
    raw = SOURCES[dataset.source].load(dataset.source_options())
    rng = np.random.default_rng(dataset.split_seed)
    train_idx = balanced_indices(raw.train_labels, dataset.train_per_class, rng)
    val_idx = (balanced_indices(raw.train_labels, dataset.val_per_class, rng, exclude=train_idx)
               if dataset.val_per_class else np.zeros(0, np.int64))
    test_idx = (balanced_indices(raw.test_labels, dataset.test_per_class, rng)
                if dataset.test_per_class else np.arange(len(raw.test_labels)))
    splits = {"train": (raw.train_images, raw.train_labels, train_idx),
              "val": (raw.train_images, raw.train_labels, val_idx),
              "test": (raw.test_images, raw.test_labels, test_idx)}
    if dataset.resample_per_seed:  # every training image a seed's subset may draw: all but the validation ones
        splits["pool"] = (raw.train_images, raw.train_labels, np.setdiff1d(np.arange(len(raw.train_labels)), val_idx))
    for split, (images, labels, idx) in splits.items():
        save_split(out_dir / f"{split}.npz", images[idx], labels[idx])
        log.info("%s: %d images of shape %s", split, len(idx), images.shape[1:])
    summary = {"name": dataset.name, "source": dataset.source, "classes": raw.classes,
               "image_shape": list(raw.train_images.shape[1:]),
               "sizes": {split: int(len(idx)) for split, (_, _, idx) in splits.items()}}
    write_json(out_dir / "classes.json", summary)
    return summary


def prepare_judge_split(source: Mapping, per_class: int, seed: int, out_npz: str | Path) -> dict:
    """The training images of the fidelity judge: up to `per_class` images of every class (all of a class that has
    fewer), a seeded draw from the source's whole training set. The test split comes from the source's separate
    test set, so the judge never sees a test image. `source`: what the source reader reads ({source, root,
    image_size, download}: Dataset.source_options). Returns {"per_class": ..., "n": ...}."""
    raw = SOURCES[source["source"]].load(source)
    smallest = int(np.bincount(raw.train_labels).min())
    taken = min(per_class, smallest)
    if taken < per_class:
        log.info("the smallest class has %d training images: taking %d per class, not %d", smallest, taken, per_class)
    idx = balanced_indices(raw.train_labels, taken, np.random.default_rng(seed))
    save_split(out_npz, raw.train_images[idx], raw.train_labels[idx])
    log.info("judge training split: %d images (%d per class)", len(idx), taken)
    return {"per_class": taken, "n": int(len(idx))}
