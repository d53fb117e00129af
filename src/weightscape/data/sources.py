"""Readers of raw image datasets, by name (the config's `datasets[].source`).

Each source turns its raw files into `RawData` (uint8 NHWC images, int64 labels, class names) and can say, before
any job runs, whether its files are where the config says and how many images per class it holds.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
FASHION_MNIST_DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]
FASHION_MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                       "t10k-labels-idx1-ubyte.gz"]


class SourceError(ValueError):
    """Raw data missing or unreadable; the message names the path and how to fix it."""


@dataclass
class RawData:
    train_images: np.ndarray  # uint8 (N, H, W, C)
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]


@dataclass(frozen=True)
class Source:
    """`per_class(cfg)` -> (smallest train class, smallest test class); raises SourceError when files are missing."""
    load: Callable[[dict], RawData]
    per_class: Callable[[dict], tuple[int, int]]


# --- Fashion-MNIST: the Debian package's gz files (offline), or torchvision's download -------------------------------

def _fashion_dir(cfg: dict) -> Path:
    root = Path(cfg.get("root") or FASHION_MNIST_DEBIAN_ROOT)
    for candidate in (root, root / "FashionMNIST" / "raw"):
        if all((candidate / f).is_file() or (candidate / f[:-3]).is_file() for f in FASHION_MNIST_FILES):
            return candidate
    if cfg.get("download"):
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
        return root / "FashionMNIST" / "raw"
    raise SourceError(f"Fashion-MNIST files ({', '.join(FASHION_MNIST_FILES)}) not found in {root}: install the Debian "
                      f"package dataset-fashion-mnist, point `root` at them, or set `download: true` (needs internet)")


def _read_idx(path: Path, offset: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def _idx_file(folder: Path, name: str) -> Path:
    return folder / name if (folder / name).is_file() else folder / name[:-3]


def _load_fashion_mnist(cfg: dict) -> RawData:
    folder = _fashion_dir(cfg)
    arrays = []
    for images_name, labels_name in (FASHION_MNIST_FILES[:2], FASHION_MNIST_FILES[2:]):
        images = _read_idx(_idx_file(folder, images_name), 16).reshape(-1, 28, 28, 1)
        labels = _read_idx(_idx_file(folder, labels_name), 8).astype(np.int64)
        arrays += [images, labels]
    return RawData(*arrays, classes=list(FASHION_MNIST_CLASSES))


def _fashion_per_class(cfg: dict) -> tuple[int, int]:
    if not cfg.get("download"):
        _fashion_dir(cfg)
    return 6000, 1000


# --- CIFAR-10 / CIFAR-100 through torchvision (root with the python batches, or download) ----------------------------

def _cifar(cfg: dict, train: bool, hundred: bool):
    from torchvision.datasets import CIFAR10, CIFAR100

    dataset_class = CIFAR100 if hundred else CIFAR10
    root = cfg.get("root") or "results/downloads"
    try:
        return dataset_class(root, train=train, download=bool(cfg.get("download")))
    except RuntimeError:
        raise SourceError(f"{dataset_class.__name__} not found under {root}: set `root` to a folder holding "
                          f"{dataset_class.base_folder}/ or set `download: true` (needs internet)") from None


def _cifar_source(hundred: bool) -> Source:
    folder = "cifar-100-python" if hundred else "cifar-10-batches-py"

    def load(cfg: dict) -> RawData:
        train, test = _cifar(cfg, True, hundred), _cifar(cfg, False, hundred)
        return RawData(train.data, np.asarray(train.targets, np.int64), test.data, np.asarray(test.targets, np.int64),
                       list(train.classes))

    def per_class(cfg: dict) -> tuple[int, int]:
        root = Path(cfg.get("root") or "results/downloads")
        if not cfg.get("download") and not (root / folder).is_dir():
            raise SourceError(f"{root / folder} does not exist: set `root` to the folder that holds {folder}/ "
                              f"or set `download: true` (needs internet)")
        return (500, 100) if hundred else (5000, 1000)

    return Source(load, per_class)


# --- imagefolder: root/<class>/* (split here) or root/train/<class>/* + root/test/<class>/* -------------------------

def _class_dirs(folder: Path) -> dict[str, list[Path]]:
    return {d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            for d in sorted(folder.iterdir()) if d.is_dir()}


def _imagefolder_layout(cfg: dict) -> tuple[dict[str, list[Path]], dict[str, list[Path]] | None]:
    if not cfg.get("root"):
        raise SourceError("imagefolder needs `root`: a folder of class folders (or train/ and test/ of them)")
    root = Path(cfg["root"])
    if not root.is_dir():
        raise SourceError(f"{root} does not exist or is not a folder")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, test = _class_dirs(root / "train"), _class_dirs(root / "test")
        if sorted(train) != sorted(test):
            raise SourceError(f"{root}/train and {root}/test hold different class folders")
    else:
        train, test = _class_dirs(root), None
    if len(train) < 2 or any(not files for files in train.values()):
        raise SourceError(f"{root} needs at least two class folders, each with images ({', '.join(IMAGE_SUFFIXES)})")
    return train, test


def _read_images(files: list[Path], size: int) -> np.ndarray:
    from PIL import Image

    def read(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))

    return np.stack([read(f) for f in files]) if files else np.zeros((0, size, size, 3), np.uint8)


def _load_imagefolder(cfg: dict) -> RawData:
    train, test = _imagefolder_layout(cfg)
    classes = sorted(train)
    if test is None:  # hold out the last fifth of each class (files are sorted, so the split is stable)
        test = {c: files[len(files) - len(files) // 5:] for c, files in train.items()}
        train = {c: files[: len(files) - len(files) // 5] for c, files in train.items()}
    arrays = []
    for split in (train, test):
        files = [f for c in classes for f in split[c]]
        labels = np.asarray([i for i, c in enumerate(classes) for _ in split[c]], np.int64)
        arrays += [_read_images(files, cfg.get("image_size", 32)), labels]
    return RawData(*arrays, classes=classes)


def _imagefolder_per_class(cfg: dict) -> tuple[int, int]:
    train, test = _imagefolder_layout(cfg)
    if test is None:
        return min(len(f) - len(f) // 5 for f in train.values()), min(len(f) // 5 for f in train.values())
    return min(map(len, train.values())), min(map(len, test.values()))


SOURCES: dict[str, Source] = {
    "fashion_mnist": Source(_load_fashion_mnist, _fashion_per_class),
    "cifar10": _cifar_source(hundred=False),
    "cifar100": _cifar_source(hundred=True),
    "imagefolder": Source(_load_imagefolder, _imagefolder_per_class),
}
