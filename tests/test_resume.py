"""Resumable fine-tuning through snakemake: kill -9 a fine-tune after its first epoch checkpoint, rerun with
--rerun-incomplete, and get exactly an uninterrupted run's results, without recomputing a finished run."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, SNAKEMAKE, job_counts, snakemake, write_config
from weightscape import layout

pytestmark = pytest.mark.pipeline
CELL = {"model": "efficientnet_lite0", "dataset": "fashion_mnist"}
FINISHED = Path(layout.RUNS.format(**CELL, condition="dropout_0.5", seed=0))
KILLED_RUN = layout.RUN.format(**CELL, condition="weight_decay_0.001", seed=1)
KILLED = Path(layout.RUNS.format(**CELL, condition="weight_decay_0.001", seed=1))


def _kill_after_first_epoch(workdir: Path, config: Path) -> Path:
    """Start snakemake on the KILLED run and kill -9 it (with its job) once the first epoch checkpoint exists."""
    env = dict(os.environ, PATH=f"{Path(SNAKEMAKE).parent}:{os.environ['PATH']}", HF_HUB_OFFLINE="1")
    job = subprocess.Popen([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
                            str(KILLED / "metrics.json"), "--cores", "1", "--configfile", str(config)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    checkpoint = workdir / KILLED / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # snakemake and its job, like a preempted node
    job.wait()
    assert checkpoint.exists(), "the fine-tune never wrote its first epoch checkpoint"
    assert not (workdir / KILLED / "metrics.json").exists()
    assert snakemake(workdir, "--unlock", "--configfile", str(config)).returncode == 0
    return checkpoint


def _resumed_log(workdir: Path) -> str:
    return (workdir / layout.log("finetune", KILLED_RUN)).read_text()


def test_killed_fine_tune_resumes_and_equals_an_uninterrupted_run(smoke, tmp_path):
    reference_dir, _ = smoke  # the same config run without interruption
    config = write_config(tmp_path / "smoke.yaml", REPO / "configs" / "smoke.yaml")
    # targets go before --configfile, which takes every following argument as a config file
    finished = snakemake(tmp_path, str(FINISHED / "metrics.json"), "--cores", "1", "--configfile", str(config))
    assert finished.returncode == 0, finished.stderr[-3000:]
    finished_mtime = (tmp_path / FINISHED / "weights.safetensors").stat().st_mtime_ns
    checkpoint = _kill_after_first_epoch(tmp_path, config)

    rerun = snakemake(tmp_path, str(FINISHED / "metrics.json"), str(KILLED / "metrics.json"), "--cores", "1",
                      "--rerun-incomplete", "--configfile", str(config))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert job_counts(rerun.stdout + "\n" + rerun.stderr) == {"finetune": 1, "total": 1}
    assert "resuming from" in _resumed_log(tmp_path) and "after epoch 1" in _resumed_log(tmp_path)
    for name in ("metrics.json", "curve.csv", "weights.safetensors"):
        assert (tmp_path / KILLED / name).read_bytes() == (reference_dir / KILLED / name).read_bytes(), name
    assert not checkpoint.exists()  # removed once the outputs are written
    assert (tmp_path / FINISHED / "weights.safetensors").stat().st_mtime_ns == finished_mtime


def test_a_resume_with_other_execution_settings_continues_from_the_checkpoint(smoke, tmp_path):
    """A cluster user who resubmits with more threads keeps the finished epochs: threads and workers are no part
    of the resume fingerprint; the new values are recorded as provenance."""
    config = write_config(tmp_path / "smoke.yaml", REPO / "configs" / "smoke.yaml")
    _kill_after_first_epoch(tmp_path, config)
    more = write_config(tmp_path / "more_threads.yaml", config, train={"threads": 2, "num_workers": 1})
    rerun = snakemake(tmp_path, str(KILLED / "metrics.json"), "--cores", "2", "--rerun-incomplete",
                      "--configfile", str(more))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in _resumed_log(tmp_path) and "after epoch 1" in _resumed_log(tmp_path)
    metrics = json.loads((tmp_path / KILLED / "metrics.json").read_text())
    assert metrics["execution"]["threads"] == 2 and metrics["execution"]["num_workers"] == 1
    assert [int(row.split(",")[0]) for row in (tmp_path / KILLED / "curve.csv").read_text().splitlines()[1:]] == \
        [1, 2, 3]
