"""benchmarks/gpu_check.sh / gpu_check.py / gpu_jobs.py as far as a CPU can run them: argument handling, the bare
reference loop, the report and its verdict line, the warm-up and k-jobs tables and the rates file they write for
grid_profile.py --project; the CUDA part runs where a GPU is lent (its output goes into the session note)."""

import json

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def test_the_shell_script_explains_itself_and_refuses_bad_arguments():
    usage = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--skip-grid" in usage.stdout and "WHEELS" in usage.stdout
    assert "--skip-jobs" in usage.stdout and usage.stdout.rstrip().endswith("when every part passed.")
    for bad, message in ((["--bogus"], "unknown argument '--bogus'"), (["--steps", "x"], "whole numbers"),
                         (["--cores", "-1"], "whole numbers")):
        result = subprocess.run(["bash", str(SCRIPT), *bad], capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr, bad
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [(["--steps", "0"], "--steps must be >= 1"),
                                           (["--warmup", "-1"], "--warmup must be >= 0"),
                                           (["--batch-size", "0"], "--batch-size must be >= 1")])
def test_python_arguments_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        gpu_check.parse_args(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_the_bare_loop_trains_and_stays_finite():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, gpu_check.CLASSES))
    pool = gpu_check.batch_pool(batch_size=8, image_size=8, pool=2)
    first = gpu_check.bare_loop(model, pool, steps=1, lr=1e-2, device=torch.device("cpu"))
    last = gpu_check.bare_loop(model, pool, steps=30, lr=1e-2, device=torch.device("cpu"))
    assert math.isfinite(first) and last < first  # it learns the fixed batches
    assert gpu_check.all_finite(model)


def test_report_and_problems_name_what_went_wrong():
    figures = {"name": "m", "arch": "timm:x", "parameters": 2.5e6, "image_size": 224, "batch_size": 32,
               "rates": {"bare": 100.0, "weightscape": 95.0}, "seconds": {"bare": [1.0], "weightscape": [1.05]},
               "ratio": 0.95, "peak_gib": 1.5, "finite_loss": True, "finite_weights": False,
               "finite_predictions": True, "spectra": {"seconds": 2.0, "layers": 10, "analysed": 9, "finite": True}}
    text = "\n".join(gpu_check.report(figures, steps=150, repeats=2))
    assert "ratio weightscape / bare = 0.950" in text and "peak GPU memory 1.50 GiB" in text
    assert "9 of 10 layers analysed" in text and "weights False" in text
    assert gpu_check.problems(figures) == ["m: non-finite weights"]


def test_a_cpu_run_on_the_smoke_model_reports_ok(fashion_root):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--config",
                             str(REPO / "configs" / "smoke.yaml"), "--device", "cpu", "--steps", "2", "--repeats",
                             "1", "--warmup", "1", "--batch-size", "4", "--image-size", "32"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "cpu (float32)" in out and "model efficientnet_lite0" in out and "ratio weightscape / bare" in out
    assert out.strip().splitlines()[-1] == "gpu_check: ok"
    unknown = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--models", "nope",
                              "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert unknown.returncode != 0 and "--models 'nope' is not a model" in unknown.stderr


def test_gpu_jobs_on_the_cpu_writes_the_rates_that_the_projection_reads(fashion_root, tmp_path):
    """Every job a process of its own: the warm-up table (one job per setting), k = 1, 2 concurrent jobs, and the
    rates file, which grid_profile.py --project then uses for the smoke grid."""
    rates = tmp_path / "rates.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_jobs.py"), "--config",
                             str(REPO / "configs" / "smoke.yaml"), "--device", "cpu", "--share", "2,1", "--seconds",
                             "0.5", "--batch-size", "4", "--image-size", "32", "--rates", str(rates)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for setting in ("as the pipeline runs", "CUDA_MODULE_LOADING=EAGER", "cudnn.benchmark on"):
        assert f"  {setting}" in out
    assert "model efficientnet_lite0 @ 32 px, batch 4, on cpu" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [row[0] for row in rows] == ["1", "2"] and rows[0][3] == "1.00" and rows[0][-2:] == ["n/a", "n/a"]
    model = json.loads(rates.read_text())["models"]["efficientnet_lite0"]
    assert set(model["jobs"]) == {"1", "2"} and model["arch"] == "efficientnet_lite0" and model["batch_size"] == 4
    default = model["warmup"]["as the pipeline runs"]
    assert model["startup_s"] == default["imports"] + default["overhead"] > 0 and default["libcuda"] is False
    for row in model["jobs"].values():
        assert row["train_images_per_s"] > 0 and row["aggregate_inference_images_per_s"] > 0
    assert model["jobs"]["2"]["aggregate_train_images_per_s"] >= model["jobs"]["2"]["train_images_per_s"]
    projected = subprocess.run([sys.executable, str(REPO / "benchmarks" / "grid_profile.py"), str(REPO),
                                "--configfile", str(REPO / "configs" / "smoke.yaml"), "--project", str(rates),
                                "--jobs-per-gpu", "2"], capture_output=True, text=True, timeout=300)
    assert projected.returncode == 0, projected.stderr[-2000:]
    assert "1 GPU(s) x 2 jobs per GPU = 2 at once" in projected.stdout and "(cpu, measured 20" in projected.stdout
