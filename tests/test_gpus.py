"""Several jobs per GPU (weightscape.execution.gpus), on a machine without one: CUDA_VISIBLE_DEVICES stands in for
the GPUs. The slots a job asks for, the limit the default profile sets, the place a job takes, and a real Snakemake
run whose jobs share stand-in GPUs as the profile and the places allow."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO
from weightscape.execution import gpus


def schema_jobs_per_gpu() -> list[int]:
    from weightscape.config import schema

    return schema()["properties"]["train"]["properties"]["jobs_per_gpu"]["enum"]


@pytest.mark.parametrize("n_gpus", [1, 2, 3, 4])
def test_the_limit_of_n_gpus_admits_n_times_k_jobs_for_every_allowed_k(n_gpus):
    for k in schema_jobs_per_gpu():
        asked = gpus.slots_per_job("cuda", k)
        assert asked * k == gpus.SLOTS_PER_GPU  # exactly k shares make one GPU
        assert (gpus.SLOTS_PER_GPU * n_gpus) // asked == n_gpus * k  # the limit for N GPUs admits N x k jobs
        assert gpus.slots_per_job("cpu", k) == gpus.slots_per_job("auto", k) == 0  # no GPU asked off cuda
    with pytest.raises(ValueError, match="must divide 8"):
        gpus.slots_per_job("cuda", 3)


def test_the_default_profile_limits_one_gpu_and_the_cluster_does_not_count_it():
    from snakemake.cli import parse_args

    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.v8+.yaml").read_text())
    assert profile["resources"] == [f"gpu_slots={gpus.SLOTS_PER_GPU}"]
    assert set(profile["set-resource-scopes"]) == {"gpu=local", "gpu_slots=local"}
    _, args = parse_args(["--snakefile", str(REPO / "Snakefile")])
    assert int(args.resources["gpu_slots"].value) == gpus.SLOTS_PER_GPU


def test_visible_gpus_come_from_cuda_visible_devices_or_the_device_nodes(tmp_path):
    assert gpus.visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 5"}) == ["2", "5"]
    assert gpus.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-modeset"):
        (tmp_path / name).touch()
    assert gpus.visible_gpus({}, devices=tmp_path) == ["0", "1"]
    assert gpus.visible_gpus({}, devices=tmp_path / "none") == []


def test_places_fill_the_gpus_evenly_and_a_job_waits_when_all_are_taken(tmp_path):
    held = [gpus.take_place(["0", "1", "2"], 2, tmp_path) for _ in range(6)]
    assert [place.gpu for place in held[:3]] == ["0", "1", "2"]  # one job per GPU before a second on any
    assert Counter(place.gpu for place in held) == {"0": 2, "1": 2, "2": 2}
    got = []
    waiter = threading.Thread(target=lambda: got.append(gpus.take_place(["0", "1", "2"], 2, tmp_path, poll=0.05)))
    waiter.start()
    time.sleep(0.4)
    assert not got  # every place is taken
    held[4].release()  # a job on GPU 1 ends
    waiter.join(timeout=5)
    assert [place.gpu for place in got] == ["1"]
    for place in held + got:
        place.release()
    assert gpus.take_place(["0", "1", "2"], 2, tmp_path).held_by_others == 0


def test_claim_narrows_the_visible_gpus_only_for_a_job_with_slots_outside_slurm(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "3,7"}
    first = gpus.claim(4, env, folder=tmp_path)  # 4 of 8 slots: 2 jobs per GPU
    assert (first.gpu, first.places, env["CUDA_VISIBLE_DEVICES"], env["CUDA_MODULE_LOADING"]) == ("3", 2, "3", "LAZY")
    env2 = {"CUDA_VISIBLE_DEVICES": "3,7"}
    assert gpus.claim(4, env2, folder=tmp_path).gpu == "7" and env2["CUDA_VISIBLE_DEVICES"] == "7"
    for environ, slots in (({"CUDA_VISIBLE_DEVICES": "0"}, 0), ({"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_ID": "9"}, 8),
                           ({"CUDA_VISIBLE_DEVICES": "0", "PBS_JOBID": "9"}, 8), ({"CUDA_VISIBLE_DEVICES": ""}, 8),
                           ({"CUDA_VISIBLE_DEVICES": "0", "WEIGHTSCAPE_GPU_PLACES": "0"}, 8)):
        before = dict(environ, **({"CUDA_MODULE_LOADING": "LAZY"} if slots else {}))
        assert gpus.claim(slots, environ, folder=tmp_path) is None and environ == before


def test_a_killed_job_frees_its_place(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import pathlib, sys, time
        from weightscape.execution import gpus
        place = gpus.take_place(["0"], 1, pathlib.Path({str(tmp_path)!r}))
        print(place.gpu, flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        got = []
        waiter = threading.Thread(target=lambda: got.append(gpus.take_place(["0"], 1, tmp_path, poll=0.05)))
        waiter.start()
        time.sleep(0.3)
        assert not got
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    waiter.join(timeout=5)
    assert [place.gpu for place in got] == ["0"]


TOY = """
from weightscape.execution import gpus

rule all:
    input:
        expand("done/{{i}}.json", i=range({jobs})),


rule job:
    output:
        "done/{{i}}.json",
    resources:
        gpu_slots=gpus.slots_per_job("cuda", {k}),
    params:
        together={together},
    script:
        "job.py"
"""
# a job as the pipeline's start (weightscape.execution.job): claim with the job's slots, then hold the place until
# `together` jobs have started (so that the first N x k overlap however slowly this machine starts processes)
JOB = """
import json, os, time
from weightscape.execution import gpus

place = gpus.claim(int(snakemake.resources.gpu_slots))
start = time.time()
os.makedirs("started", exist_ok=True)
open(f"started/{snakemake.wildcards.i}", "w").close()
while len(os.listdir("started")) < snakemake.params.together and time.time() < start + 60:
    time.sleep(0.05)
time.sleep(0.5)
with open(snakemake.output[0], "w") as fh:
    json.dump({"gpu": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()}, fh)
"""


@pytest.mark.parametrize("n_gpus, k", [(1, 2), (2, 2), (3, 1)])
def test_snakemake_runs_n_times_k_jobs_at_once_spread_over_the_gpus(tmp_path, n_gpus, k):
    """A toy workflow whose jobs (script jobs: each its own process) ask and claim as the pipeline's model jobs do,
    run by Snakemake under the limit of N GPUs with more cores than jobs: N x k run at once, k on each GPU."""
    jobs = 3 * n_gpus * k
    (tmp_path / "Snakefile").write_text(TOY.format(jobs=jobs, k=k, together=n_gpus * k))
    (tmp_path / "job.py").write_text(JOB)
    # as on a workstation, even where the tests themselves run in a batch job
    dropped = (*gpus.BATCH_JOB_VARIABLES, "WEIGHTSCAPE_GPU_PLACES")
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env.update(CUDA_VISIBLE_DEVICES=",".join(str(i) for i in range(n_gpus)), TMPDIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(jobs), "--workflow-profile", "none",
                             "--resources", f"gpu_slots={gpus.SLOTS_PER_GPU * n_gpus}", "--quiet", "all"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads((tmp_path / "done" / f"{i}.json").read_text()) for i in range(jobs)]
    events = sorted([(r["start"], 1, r["gpu"]) for r in runs] + [(r["end"], -1, r["gpu"]) for r in runs])
    running, per_gpu, most, most_per_gpu = 0, Counter(), 0, Counter()
    for _, step, gpu in events:
        running += step
        per_gpu[gpu] += step
        most = max(most, running)
        most_per_gpu[gpu] = max(most_per_gpu[gpu], per_gpu[gpu])
    assert most == n_gpus * k  # the limit admits N x k at once ...
    assert dict(most_per_gpu) == {str(i): k for i in range(n_gpus)}  # ... k on each GPU, never more
    # how many jobs each GPU runs in all follows which GPU frees a place first (a job takes the least occupied one),
    # so the totals need not be equal: every GPU ran jobs
    totals = Counter(r["gpu"] for r in runs)
    assert set(totals) == {str(i) for i in range(n_gpus)} and sum(totals.values()) == jobs


def test_the_job_helper_claims_a_place_for_a_job_with_gpu_slots(tmp_path, monkeypatch):
    """weightscape.execution.job, as every adapter opens with it: a job asking 2 of 8 slots (4 per GPU) on the
    stand-in GPUs 0,1 holds a place while it runs and sees only its GPU; a job asking none changes nothing."""
    import tempfile

    from weightscape.execution import job

    for name in (*gpus.BATCH_JOB_VARIABLES, "WEIGHTSCAPE_GPU_PLACES", "CUDA_MODULE_LOADING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WEIGHTSCAPE_FORK_SERVER", "0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with job(SimpleNamespace(log=[], threads=1, resources={"gpu_slots": 0}), __file__) as run:
        assert run.gpu is None and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    with job(SimpleNamespace(log=[], threads=1, resources={"gpu_slots": 2}), __file__) as run:
        assert (run.gpu.gpu, run.gpu.places, os.environ["CUDA_VISIBLE_DEVICES"]) == ("0", 4, "0")
        assert os.environ["CUDA_MODULE_LOADING"] == "LAZY"
        assert gpus.take_place(["0", "1"], 4, gpus.places_folder()).gpu == "1"  # the job's place is held


def test_a_cpu_job_records_the_same_provenance_as_before():
    from weightscape.settings import Execution

    cpu = Execution(device="cpu", threads=1, num_workers=0, eval_batch_size=16, jobs_per_gpu=4)
    assert set(cpu.provenance()) == {"device", "threads", "num_workers", "eval_batch_size", "torch"}
