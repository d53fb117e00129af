"""Shared fixtures. Every test runs offline (HF_HUB_OFFLINE) on one thread, on real small data."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    from weightscape.runtime import pin_threads

    pin_threads(1)


@pytest.fixture(scope="session")
def fashion_root() -> Path:
    """The Debian Fashion-MNIST files; `make test` installs them. Missing files are an error, not a skip."""
    if not (FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{FASHION_MNIST_ROOT} is missing: run `make test` (installs dataset-fashion-mnist) or "
                    f"`apt-get install dataset-fashion-mnist`")
    return FASHION_MNIST_ROOT


def tiny_dataset_config(**overrides) -> dict:
    """A valid datasets[] entry on the real Fashion-MNIST files, small enough for unit tests."""
    return {"name": "fashion_mnist", "source": "fashion_mnist", "train_per_class": 8, "val_per_class": 2,
            "test_per_class": 6, "split_seed": 0, "root": None, "download": False, **overrides}


def base_config(**overrides) -> dict:
    """A small valid config (dict) for validation tests."""
    config = {
        "datasets": [tiny_dataset_config()],
        "models": [{"name": "lite0", "arch": "efficientnet_lite0"}],
        "seeds": [0],
        "ood": {"test_per_class": 2},
        "families": {"dropout": [0.5], "weight_decay": [1e-3]},
    }
    config.update(overrides)
    return config
