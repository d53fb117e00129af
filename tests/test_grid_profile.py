"""benchmarks/grid_profile.py on the finished smoke grid: its tables equal the benchmark files, the phase line of each
fine-tune job covers that job's wall time, the floor is measured on the grid's real image counts, and --idle reruns a
job as the run ran it and leaves the run as it was."""

import json
import math
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from weightscape import layout

pytestmark = pytest.mark.pipeline
PROFILE = REPO / "benchmarks" / "grid_profile.py"


def benchmark_totals(results: Path) -> dict[str, tuple[int, float]]:
    """rule -> (jobs, sum of s), read straight from the TSVs (a table's repeated rows averaged)."""
    seconds = defaultdict(list)
    for path in (results.parent / layout.BENCHMARKS).rglob("*.tsv"):
        rule = path.relative_to(results.parent / layout.BENCHMARKS).parts[0].removesuffix(".tsv")
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


def check_profile(workdir: Path, config: Path, scratch: Path) -> dict:
    out = scratch / "profile.json"
    result = subprocess.run([sys.executable, str(PROFILE), str(workdir), "--configfile", str(config), "--json",
                             str(out), "--images", "32", "--repeats", "1"], check=False, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    profile = json.loads(out.read_text())
    results = workdir / "results"

    # 1. per-rule tables = the benchmark files, one for every rule's jobs (`all` has no work)
    totals = benchmark_totals(results)
    assert set(profile["rules"]) == set(totals) and {"summarize_runs", "plots", "summary_md"} <= set(totals)
    for rule, (jobs, seconds) in totals.items():
        assert profile["rules"][rule]["jobs"] == jobs, rule
        assert profile["rules"][rule]["total_s"] == pytest.approx(seconds, abs=1e-6), rule

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
    assert measured["image_size"] == 32 and measured["batch_size"] == 32  # configs/smoke.yaml
    figures = [measured["train_images_per_s"], measured["inference_images_per_s"], floor["floor_s"],
               floor["ratio"], profile["run"]["wall_s"], profile["run"]["run_floor_s"], profile["run"]["ratio"]]
    assert all(math.isfinite(x) and x > 0 for x in figures), figures
    assert measured["inference_images_per_s"] > measured["train_images_per_s"]
    assert sum(job["floor_s"] for job in jobs) == pytest.approx(floor["floor_s"])
    # the augmentation's bare cost: measured for the jobs whose condition augments (autoaugment, noise, autoaugment
    # with dropout), none for the others; shown beside the floor, not in it
    import yaml

    from weightscape.config import validated_settings

    conditions = validated_settings(yaml.safe_load(config.read_text()), base_dir=workdir).conditions
    augmented = {job["job"]: job["augment_s"] for job in jobs if conditions[job["condition"]].transforms}
    assert augmented and all(math.isfinite(x) and x > 0 for x in augmented.values())
    assert all(job["augment_s"] is None for job in jobs if job["job"] not in augmented)
    assert floor["augment_s"] == pytest.approx(sum(augmented.values()))
    assert floor["floor_with_augment_s"] == pytest.approx(floor["floor_s"] + floor["augment_s"])
    assert profile["run"]["run_floor_with_augment_s"] >= profile["run"]["run_floor_s"]
    # idle core time: the core time of the run (2 cores, as the fixture ran it) its jobs did not use; the jobs
    # cannot have used more than there was (5 % for the 1 s resolution of the Snakemake log's time stamps)
    run, summed = profile["run"], sum(row["total_s"] for row in profile["rules"].values())
    assert run["idle_core_s"] == pytest.approx(2 * run["wall_s"] - summed)
    assert run["idle_core_s"] > -0.05 * 2 * run["wall_s"]
    return profile


def test_grid_profile_on_the_smoke_grid(smoke, tmp_path):
    workdir, config = smoke
    check_profile(workdir, config, tmp_path)


def test_idle_jobs_rerun_as_the_run_ran_them_and_leave_the_run_as_it_was(smoke, tmp_path):
    """--idle on a copy of the smoke run: the rerun job's outputs equal the run's byte for byte, its figures come
    from the job's own benchmark table and log, and afterwards every file of the run is back with its time, so that
    Snakemake has nothing to rerun."""
    from conftest import snakemake

    source, config = smoke
    workdir = tmp_path / "run"
    shutil.copytree(source, workdir, symlinks=True)
    item = {"model": "efficientnet_lite0", "dataset": "fashion_mnist", "condition": "autoaugment", "seed": 0}
    key, run = layout.RUN.format(**item), workdir / layout.RUNS.format(**item)
    files = [run / name for name in ("weights.safetensors", "curve.csv", "metrics.json")]
    files += [workdir / layout.log("finetune", key), workdir / layout.benchmark("finetune", key)]
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files}
    out = tmp_path / "idle.json"
    result = subprocess.run([sys.executable, str(PROFILE), str(workdir), "--configfile", str(config), "--idle", key,
                             "--repeats", "1", "--floor-repeats", "1", "--images", "32", "--json", str(out)],
                            check=False, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    [(name, row)] = json.loads(out.read_text()).items()
    assert name == key and row["identical"] == [True]
    # the figures of the rerun: a wall that its phases cover, a floor of the job's image counts, its augmentation
    [wall], [phases] = row["wall_s"], row["phases"]
    assert set(phases) == {"startup", "load", "train", "evaluate", "write"}
    assert abs(wall - sum(phases.values())) <= 0.1 * wall
    assert all(math.isfinite(x) and x > 0 for x in (row["floor"], row["ratio"], row["augment"]))
    # the floor brackets the job: measured right before and right after it, the job's floor is their mean
    [bracket] = row["floor_around_s"]
    assert len(bracket) == 2 and all(math.isfinite(x) and x > 0 for x in bracket)
    assert row["floor"] == pytest.approx(sum(bracket) / 2)
    assert row["drift"] == pytest.approx(abs(bracket[1] / bracket[0] - 1))
    assert row["outside"] == pytest.approx(wall - phases["train"] - phases["evaluate"])
    # one repeat: its paired ratio is its job against its own bracket and augmentation
    assert row["paired_ratios"] == [pytest.approx(wall / (row["floor"] + row["augment"]))]
    assert row["paired_ratio"] == row["paired_ratios"][0] == pytest.approx(row["ratio_with_augment"])
    # the run as it was: same bytes, same times, nothing to rerun
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files} == before
    dry = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(config))
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]


def test_idle_names_a_job_the_run_does_not_have(smoke, tmp_path):
    workdir, config = smoke
    result = subprocess.run([sys.executable, str(PROFILE), str(workdir), "--configfile", str(config), "--idle",
                             "efficientnet_lite0/fashion_mnist/no_such_condition/seed0"],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: no finished fine-tune job efficientnet_lite0/fashion_mnist/no_such_condition/seed0 in "
        f"{workdir.resolve() / 'results'} (KEY is MODEL/DATASET/CONDITION/seedN of a finished run)"]
