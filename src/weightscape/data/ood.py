"""The OOD stage: a seeded, class-balanced sample of the clean test set, corrupted at every severity.

One file per corruption: `images` (S x N x H x W x C uint8, one slab per severity), `labels` (N), `severities` (S).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from weightscape.data.canonical import balanced_indices, load_split
from weightscape.data.corruptions import CATEGORIES, corrupt
from weightscape.io import atomic_path

log = logging.getLogger(__name__)


def make_ood_sets(test_npz: str | Path, ood: dict, out_files: dict[str, str | Path],
                  progress: Callable[[Iterable], Iterable] = lambda it: it) -> None:
    """Write `out_files[corruption]` for every configured corruption (config slice `ood`)."""
    images, labels = load_split(test_npz)
    idx = balanced_indices(labels, ood["test_per_class"], np.random.default_rng(ood["seed"]))
    images, labels = images[idx], labels[idx]
    for number, corruption in enumerate(progress(ood["corruptions"])):
        slabs = [corrupt(images, corruption, severity, seed=ood["seed"] * 1000 + number * 10 + severity)
                 for severity in ood["severities"]]
        with atomic_path(out_files[corruption]) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, images=np.stack(slabs), labels=labels, severities=np.asarray(ood["severities"]))
        log.info("%s (%s): %d images x %d severities", corruption, CATEGORIES[corruption], len(labels), len(slabs))
