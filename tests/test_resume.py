"""Resumable fine-tuning through snakemake: kill -9 a fine-tune after its first epoch checkpoint, rerun with
--rerun-incomplete, and get exactly an uninterrupted run's results, without recomputing a finished run."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, SNAKEMAKE, job_counts, snakemake, write_config

pytestmark = pytest.mark.pipeline
RUNS = Path("results/runs/fashion_mnist/efficientnet_lite0")
FINISHED = RUNS / "dropout_0.5" / "seed0"
KILLED = RUNS / "weight_decay_0.001" / "seed1"


def test_killed_fine_tune_resumes_and_equals_an_uninterrupted_run(smoke, tmp_path):
    reference_dir, _ = smoke  # the same config run without interruption
    config = write_config(tmp_path / "smoke.yaml", REPO / "configs" / "smoke.yaml")
    # targets go before --configfile, which takes every following argument as a config file
    finished = snakemake(tmp_path, str(FINISHED / "metrics.json"), "--cores", "1", "--configfile", str(config))
    assert finished.returncode == 0, finished.stderr[-3000:]
    finished_mtime = (tmp_path / FINISHED / "weights.safetensors").stat().st_mtime_ns

    env = dict(os.environ, PATH=f"{Path(SNAKEMAKE).parent}:{os.environ['PATH']}", HF_HUB_OFFLINE="1")
    job = subprocess.Popen([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                            str(KILLED / "metrics.json"), "--cores", "1", "--configfile", str(config)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    checkpoint = tmp_path / KILLED / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # snakemake and its job, like a preempted node
    job.wait()
    assert checkpoint.exists(), "the fine-tune never wrote its first epoch checkpoint"
    assert not (tmp_path / KILLED / "metrics.json").exists()

    assert snakemake(tmp_path, "--unlock", "--configfile", str(config)).returncode == 0
    rerun = snakemake(tmp_path, str(FINISHED / "metrics.json"), str(KILLED / "metrics.json"), "--cores", "1",
                      "--rerun-incomplete", "--configfile", str(config))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert job_counts(rerun.stdout + "\n" + rerun.stderr) == {"finetune": 1, "total": 1}
    log = (tmp_path / "results/logs/finetune/fashion_mnist/efficientnet_lite0/weight_decay_0.001/seed1.log")
    assert "resuming from" in log.read_text() and "after epoch 1" in log.read_text()
    for name in ("metrics.json", "curve.csv", "weights.safetensors"):
        assert (tmp_path / KILLED / name).read_bytes() == (reference_dir / KILLED / name).read_bytes(), name
    assert not checkpoint.exists()  # removed once the outputs are written
    assert (tmp_path / FINISHED / "weights.safetensors").stat().st_mtime_ns == finished_mtime
