"""benchmarks/grid_profile.py on the finished smoke grid: its tables equal the benchmark files, the phase line of each
fine-tune job covers that job's wall time, and the floor is measured on the grid's real image counts."""

import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

pytestmark = pytest.mark.pipeline


def benchmark_totals(results: Path) -> dict[str, tuple[int, float]]:
    """rule -> (jobs, sum of s), read straight from the TSVs (a table's repeated rows averaged)."""
    seconds = defaultdict(list)
    for path in (results / "benchmarks").rglob("*.tsv"):
        rule = path.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        seconds[rule].append(pd.read_csv(path, sep="\t")["s"].mean())
    return {rule: (len(values), sum(values)) for rule, values in seconds.items()}


def expected_images(results: Path) -> tuple[int, int, int]:
    """(fine-tune jobs, training images, evaluation images) from metrics.json and the data files."""
    data = results / "data" / "fashion_mnist"
    val, test = (len(np.load(data / f"{split}.npz")["labels"]) for split in ("val", "test"))
    ood = sum(int(np.prod(np.load(path)["images"].shape[:2])) for path in (data / "ood").glob("*.npz"))
    runs = [json.loads(path.read_text()) for path in (results / "runs").rglob("metrics.json")]
    return (len(runs), sum(m["n_train"] * m["epochs"] for m in runs),
            sum(val * (m["epochs"] + 1) + test + ood for m in runs))


def check_profile(workdir: Path, scratch: Path) -> dict:
    out = scratch / "profile.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "grid_profile.py"), str(workdir), "--json",
                             str(out), "--images", "32", "--repeats", "1"], check=False, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    profile = json.loads(out.read_text())
    results = workdir / "results"

    # 1. per-rule tables = the benchmark files
    totals = benchmark_totals(results)
    timed = {rule: row for rule, row in profile["rules"].items() if row["source"] == "benchmark"}
    assert set(timed) == set(totals)
    for rule, (jobs, seconds) in totals.items():
        assert timed[rule]["jobs"] == jobs, rule
        assert timed[rule]["total_s"] == pytest.approx(seconds, abs=1e-6), rule

    # 2. the phases of each fine-tune job cover its benchmark wall (within 10 %)
    jobs = profile["finetune_jobs"]
    assert len(jobs) == totals["finetune"][0] and profile["phases"]["no_phase_line"] == []
    for job in jobs:
        assert set(job["phases"]) == {"startup", "load", "train", "evaluate", "write"}, job
        outside = job["wall_s"] - sum(job["phases"].values())
        assert abs(outside) <= 0.1 * job["wall_s"], (job["job"], job["wall_s"], job["phases"], outside)

    # 3. the floor: positive, finite, on the grid's image counts
    floor = profile["floor"]
    n, train_images, eval_images = expected_images(results)
    assert (floor["jobs"], floor["train_images"], floor["eval_images"]) == (n, train_images, eval_images)
    assert floor["wall_s"] == pytest.approx(totals["finetune"][1], abs=1e-6)
    [measured] = floor["measurements"]
    assert measured["image_size"] == 32 and measured["batch_size"] == 32  # configs/smoke.yaml, via the snakemake log
    figures = [measured["train_images_per_s"], measured["inference_images_per_s"], floor["floor_s"],
               floor["ratio"], profile["run"]["wall_s"], profile["run"]["run_floor_s"], profile["run"]["ratio"]]
    assert all(math.isfinite(x) and x > 0 for x in figures), figures
    assert measured["inference_images_per_s"] > measured["train_images_per_s"]
    assert sum(job["floor_s"] for job in jobs) == pytest.approx(floor["floor_s"])
    return profile


def test_grid_profile_on_the_smoke_grid(smoke, tmp_path):
    workdir, _ = smoke
    check_profile(workdir, tmp_path)
