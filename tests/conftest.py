"""Shared fixtures. Every test runs offline (HF_HUB_OFFLINE) on one thread, on real small data."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
            "test_per_class": 6, "split_seed": 0, "resample_per_seed": False, "root": None, "download": False,
            **overrides}


def tiny_dataset(**overrides):
    """tiny_dataset_config as the settings object the data stage takes (schema defaults filled in)."""
    from weightscape.settings import Dataset

    return Dataset.from_config({"image_size": 32, **tiny_dataset_config(**overrides)})


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


SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def snakemake(workdir: Path, *args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """The snakemake CLI on this repository's workflow in `workdir`, offline, under `timeout -k 15 <timeout>`: on
    time-out snakemake first gets SIGTERM and stops its jobs (e.g. cancels SLURM jobs), then exits non-zero."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", HF_HUB_OFFLINE="1",
               **(env or {}))
    return subprocess.run(["timeout", "-k", "15", str(timeout), SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(workdir), *args],
                          capture_output=True, text=True, env=env, timeout=timeout + 60)


def write_config(path: Path, source: Path, **changes) -> Path:
    config = yaml.safe_load(source.read_text())
    for section, values in changes.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def smoke(tmp_path_factory, fashion_root):
    """The smoke grid run once per test session with the local executor (2 cores): (workdir, config path).
    Tests may dry-run against it or read it; none may change its results."""
    workdir = tmp_path_factory.mktemp("smoke")
    config = write_config(workdir / "smoke.yaml", REPO / "configs" / "smoke.yaml")
    result = snakemake(workdir, "--cores", "2", "--configfile", str(config), timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, config


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table snakemake prints (dry runs and real runs): rule -> number of jobs."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ") and "count" in line)
    counts = {}
    for line in lines[start + 2:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def reordered(value):
    """The same config with every mapping's keys in reverse order (what a YAML round trip with sorted keys does)."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value
