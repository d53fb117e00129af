"""benchmarks/gpu_check.sh and the script it runs, benchmarks/train_loop.py, as far as a CPU can run them: argument
handling, the bare reference loop, the report, the warm-up and k-jobs tables and the rates file they write for
grid_profile.py --project; on a CUDA machine also the smoke grid at 4 jobs per GPU (gpu_check.sh's `grid`)."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from conftest import FASHION_MNIST_ROOT, REPO, write_config
from weightscape import layout

sys.path.insert(0, str(REPO / "benchmarks"))
import _common  # noqa: E402
import train_loop  # noqa: E402

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def test_the_shell_script_explains_itself_and_refuses_bad_arguments():
    usage = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "[jobs] [grid]" in usage.stdout and "WHEELS" in usage.stdout
    assert usage.stdout.rstrip().endswith("when every part passed.")
    result = subprocess.run(["bash", str(SCRIPT), "jobs", "--bogus"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "gpu_check.sh: unknown part '--bogus'; allowed: jobs, grid, --help"]


@pytest.mark.parametrize("argv", [["--seconds", "0"], ["--repeats", "0"], ["--share", "2", "0"]])
def test_train_loop_arguments_are_checked(argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train_loop.py", *argv])
    with pytest.raises(SystemExit, match="--seconds, --repeats and --share take positive numbers"):
        train_loop.main()


def test_the_bare_loop_learns_fixed_batches_in_either_layout():
    for memory_format in (torch.channels_last, torch.contiguous_format):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
        pool = train_loop.batch_pool(batch_size=8, image_size=8, classes=10, pool=2)
        first = _common.bare_loop(model, pool[:1], lr=1e-2, memory_format=memory_format)
        last = _common.bare_loop(model, pool * 15, lr=1e-2, memory_format=memory_format)
        assert np.isfinite(first) and last < first
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_the_report_shows_the_warm_up_the_loops_and_what_was_not_finite():
    phases = {key: 0.5 for key in train_loop.PHASES} | {"libcuda": False}
    runs = {kind: [{"images": 200, "seconds": 2.0}] for kind in ("bare", "train", "inference")}
    entry = {"arch": "timm:x", "parameters": 2.5e6, "image_size": 224, "batch_size": 32, "device": "GPU X",
             "warmup": {"as the pipeline runs": phases}, "loops": {"rates": {"bare": 100.0, "train": 95.0},
                                                                  "runs": runs, "ratio": 0.95, "peak_gib": 1.5,
                                                                  "finite": False}}
    text = "\n".join(train_loop.report("m", entry, argparse.Namespace(repeats=1, seconds=2.0)))
    assert "model m (timm:x, 2.5 M parameters, random weights) @ 224 px, batch 32, on GPU X" in text
    assert "  as the pipeline runs" in text and "ratio fit / bare = 0.950" in text
    assert "peak GPU memory 1.50 GiB" in text and "finite (loss, predictions, weights): False" in text


def test_a_cpu_run_writes_the_rates_that_the_projection_reads(fashion_root, tmp_path):
    """Every job a process of its own: the warm-up (on a CPU one job, which also runs the loops), k = 1, 2
    concurrent jobs, and the rates file, which grid_profile.py --project then uses for that config."""
    config = write_config(tmp_path / "small.yaml", REPO / "configs" / "smoke.yaml", train={"batch_size": 4})
    rates = tmp_path / "rates.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_loop.py"), "--config", str(config),
                             "--device", "cpu", "--seconds", "0.5", "--repeats", "1", "--share", "2", "1",
                             "--rates", str(rates)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "model efficientnet_lite0 (efficientnet_lite0" in out and "@ 32 px, batch 4, on cpu (float32)" in out
    assert "  as the pipeline runs" in out and "cudnn.benchmark on" not in out  # the CUDA settings: CUDA only
    assert "ratio fit / bare" in out and "finite (loss, predictions, weights): True" in out
    assert out.strip().splitlines()[-1] == "train_loop: ok"
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [row[0] for row in rows] == ["1", "2"] and rows[0][3] == "1.00" and rows[0][-2:] == ["n/a", "n/a"]
    model = json.loads(rates.read_text())["models"]["efficientnet_lite0"]
    assert set(model["jobs"]) == {"1", "2"} and model["arch"] == "efficientnet_lite0" and model["batch_size"] == 4
    default = model["warmup"]["as the pipeline runs"]
    assert model["startup_s"] == default["imports"] + default["overhead"] > 0 and default["libcuda"] is False
    assert model["loops"]["rates"]["train"] > 0 and model["loops"]["rates"]["bare"] > 0
    for row in model["jobs"].values():
        assert row["train_images_per_s"] > 0 and row["aggregate_inference_images_per_s"] > 0
    assert model["jobs"]["2"]["aggregate_train_images_per_s"] >= model["jobs"]["2"]["train_images_per_s"]
    projected = subprocess.run([sys.executable, str(REPO / "benchmarks" / "grid_profile.py"), str(REPO),
                                "--configfile", str(config), "--project", str(rates), "--jobs-per-gpu", "2"],
                               capture_output=True, text=True, timeout=300)
    assert projected.returncode == 0, projected.stderr[-2000:]
    assert "1 GPU(s) x 2 jobs per GPU = 2 at once" in projected.stdout
    assert "(cpu (float32), measured 20" in projected.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh grid)")
def test_the_smoke_grid_on_the_gpu_at_four_jobs_per_gpu(tmp_path):
    """The smoke grid with one seed, train.device: cuda and 4 jobs per GPU, end to end through Snakemake: every run's
    metrics finite (a missing one is no failure), every fine-tune on the GPU. Fashion-MNIST from $FASHION_MNIST_ROOT
    when set (the lent GPU machines), else the Debian package's folder."""
    smoke = REPO / "configs" / "smoke.yaml"
    root = os.path.abspath(os.environ.get("FASHION_MNIST_ROOT", FASHION_MNIST_ROOT))
    datasets = [{**dataset, "root": root} for dataset in yaml.safe_load(smoke.read_text())["datasets"]]
    config = write_config(tmp_path / "gpu_smoke.yaml", smoke, seeds=[0], datasets=datasets,
                          train={"device": "cuda", "jobs_per_gpu": 4})
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(tmp_path), "--cores", str(os.cpu_count()), "--configfile", str(config)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = pd.read_csv(tmp_path / layout.RUNS_TABLE)
    assert len(runs) and not np.isinf(runs.select_dtypes("number").to_numpy(float)).any()
    assert runs[["id_accuracy", "id_ece"]].notna().all().all()
    logs = list((tmp_path / layout.LOGS / "finetune").rglob("*.log"))
    assert logs and all(", on cuda" in path.read_text() for path in logs)
