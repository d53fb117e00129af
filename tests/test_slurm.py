"""The cluster profile, end to end: the smoke grid submitted through `--profile profiles/slurm` to a real single-node
SLURM cluster on localhost (tests/slurm/start_cluster.sh), compared with the local run of the same config.

Needs root and the Debian packages slurmctld slurmd slurm-client munge (`make test` installs them); a missing
installation is an error, not a skip.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, snakemake, write_config
from weightscape import layout

SCRIPTS = REPO / "tests" / "slurm"
PROFILE = REPO / "profiles" / "slurm"
LOCAL_RULES = ("all", "summarize_runs", "summarize_spectra", "summarize_diversity", "summarize_fidelity",
               "answer", "summary_md")  # the Snakefile's localrules
INSTALL = ("run `make slurm` (root + apt), or `apt-get install -y --no-install-recommends slurmctld slurmd "
           "slurm-client munge`")
SLURM_TOOLS = ["munged", "munge", "unmunge", "slurmctld", "slurmd", "scontrol", "sinfo", "sbatch", "squeue", "scancel",
               "srun"]
# Bound on the SLURM run of the smoke grid's first seed. SLURM adds a few snakemake start-ups per job and status polls
# that back off by 10 s while no job finishes, so the cluster run submits one seed: every rule still runs as a SLURM
# job, in a third of the time of all three.
LIMIT_S = 1200
SEED = 0
# Per-run tables compared with the local run's rows of that seed; every job runs on one thread with fixed seeds (and
# seeds draw from their own generators), so they are bit-identical. Aggregates over seeds differ by design.
TABLES = [layout.RUNS_TABLE, layout.DIVERSITY_TABLE, layout.FIDELITY_TABLE]
OTHER_SEED = re.compile(rf"/seed(?!{SEED}\b)\d+\b")


def test_slurm_profile_settings_do_not_depend_on_the_workflow_profile():
    """`--profile profiles/slurm` is applied with profiles/default on top (key by key); the two must agree, so the
    cluster run behaves the same with or without `--workflow-profile none`."""
    from snakemake.cli import parse_args

    slurm = yaml.safe_load((PROFILE / "config.v8+.yaml").read_text())
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.v8+.yaml").read_text())
    assert {key: default[key] for key in slurm.keys() & default.keys()} == {
        key: slurm[key] for key in slurm.keys() & default.keys()}
    assert {"rerun-triggers", "rerun-incomplete", "keep-going", "show-failed-logs"} <= slurm.keys() & default.keys()

    base = ["--snakefile", str(REPO / "Snakefile"), "--profile", str(PROFILE)]
    _, merged = parse_args(base)  # profiles/default is found next to the Snakefile
    _, alone = parse_args([*base, "--workflow-profile", "none"])
    for args in (merged, alone):
        assert args.executor == "slurm" and args.jobs == 100 and args.latency_wait == 60
        assert args.keep_going and args.rerun_incomplete and args.show_failed_logs
        assert {t.name for t in args.rerun_triggers} == {"MTIME", "PARAMS", "INPUT", "SOFTWARE_ENV"}
        assert args.slurm_status_command == "squeue"
        assert {"slurm_partition", "slurm_account"} <= set(args.default_resources)
    # the local GPU counter of profiles/default reaches the cluster run, but only per job (not tallied globally)
    assert str(merged.resources["gpu_slots"].value) == "8"
    assert merged.set_resource_scopes == {"gpu": "local", "gpu_slots": "local"}
    assert not alone.resources


class _Resources(dict):
    """A job's resources as the slurm plugin reads them (job.resources.get(...) and job.resources.gres)."""
    __getattr__ = dict.__getitem__


def _sbatch_gpu_requests(workdir, config, *extra) -> dict[str, set[str]]:
    """rule -> the GPU arguments of its sbatch calls (the slurm plugin's own set_gres_string) for the jobs of a dry
    run with the cluster profile."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from types import SimpleNamespace

    result = snakemake(workdir, "-n", "--profile", str(PROFILE), "--configfile", str(config), *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    found, rule = {}, None
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("resources:") and rule:
            pairs = (part.split("=", 1) for part in line.removeprefix("resources:").split(", "))
            resources = _Resources({key.strip(): int(v) if v.isdigit() else v for key, v in pairs})
            found.setdefault(rule, set()).add(set_gres_string(SimpleNamespace(resources=resources)).strip())
    return found


def test_the_cluster_gives_each_model_job_a_whole_gpu_exactly_when_the_device_is_cuda(tmp_path, fashion_root):
    """train.device: cuda -> every model job's sbatch asks `--gpus=1`, whatever train.jobs_per_gpu (which shares a
    GPU between the jobs of one machine: local gpu_slots, not counted by the cluster); cpu -> no job asks for one;
    a site's GPU sharing (gres shards) replaces the request through set-resources."""
    model_rules = {"finetune", "train_judge", "train_generator", "synthesize", "fidelity", "diversity",
                   "curvature_reference", "curvature_run"}
    requests = {}
    for device, jobs_per_gpu in (("cuda", 1), ("cuda", 4), ("cpu", 4)):
        config = write_config(tmp_path / f"{device}-{jobs_per_gpu}.yaml", REPO / "configs" / "smoke.yaml",
                              train={"device": device, "jobs_per_gpu": jobs_per_gpu})
        requests[device, jobs_per_gpu] = _sbatch_gpu_requests(tmp_path, config)
    for key in (("cuda", 1), ("cuda", 4)):
        assert {rule for rule, args in requests[key].items() if args == {"--gpus=1"}} == model_rules, key
        assert all(args == {""} for rule, args in requests[key].items() if rule not in model_rules), key
    assert all(args == {""} for args in requests["cpu", 4].values())
    shared = _sbatch_gpu_requests(tmp_path, tmp_path / "cuda-4.yaml", "--set-resources", "finetune:gpu=0",
                                  "finetune:gres='shard:2'")
    assert shared["finetune"] == {"--gres=shard:2"} and shared["train_judge"] == {"--gpus=1"}


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A private single-node cluster for this module (stopped at teardown): its directory."""
    if os.geteuid() != 0:
        pytest.fail("the local SLURM cluster needs root (slurmd and the daemons' files): run the tests as root")
    missing = [tool for tool in SLURM_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"SLURM is not installed (missing {', '.join(missing)}): {INSTALL}")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.fail("snakemake-executor-plugin-slurm is missing: pip install -e '.[dev]'")
    directory = tmp_path_factory.mktemp("slurm")
    start = subprocess.run([str(SCRIPTS / "start_cluster.sh"), str(directory)], capture_output=True, text=True,
                           timeout=300)
    if start.returncode != 0:
        subprocess.run([str(SCRIPTS / "stop_cluster.sh"), str(directory)], capture_output=True, timeout=300)
        pytest.fail(f"tests/slurm/start_cluster.sh failed:\n{start.stderr}")
    yield directory
    stop = subprocess.run([str(SCRIPTS / "stop_cluster.sh"), str(directory)], capture_output=True, text=True,
                          timeout=300)
    assert stop.returncode == 0, stop.stderr


def files_under(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


@pytest.fixture
def short_tmpdir():
    """A TMPDIR of the run's own, short enough for the fork server's socket path (which falls back to /tmp past 60
    characters), so what the run's local jobs left there can be seen."""
    folder = Path(tempfile.mkdtemp(prefix="wsslurm", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slurm
@pytest.mark.pipeline
def test_smoke_grid_on_slurm_equals_the_local_run(slurm_cluster, smoke, tmp_path, short_tmpdir):
    local_dir, local_config = smoke
    workdir = tmp_path / "slurm-run"
    workdir.mkdir()
    config = write_config(workdir / "smoke.yaml", local_config, seeds=[SEED])  # the local run's, one seed

    started = time.monotonic()
    result = snakemake(
        workdir, "--profile", str(PROFILE), "--configfile", str(config),
        # timing for a cluster that answers at once (the profile's 40 s suit a busy real one), and the SLURM logs of
        # successful jobs kept as evidence; everything else comes from the profile
        "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
        timeout=LIMIT_S, env={"SLURM_CONF": str(slurm_cluster / "slurm.conf"), "TMPDIR": str(short_tmpdir)})
    elapsed = time.monotonic() - started
    log = result.stderr + result.stdout
    assert result.returncode == 0, f"exit {result.returncode} after {elapsed:.0f} s:\n{log[-6000:]}"
    print(f"SLURM run of the smoke grid: {elapsed:.0f} s")
    # both profiles were in force: the cluster profile and, on top, profiles/default
    assert re.search(r"Using profiles? \S*profiles/slurm and workflow specific profile \S*profiles/default",
                     log), log[:2000]

    # Every job ran as a SLURM job of this run, on the cluster, and completed with exit code 0.
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log)
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    accounted = {}
    for line in (slurm_cluster / "log" / "jobcomp.txt").read_text().splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("Name") == run_id:
            accounted[fields["JobId"]] = (fields["JobState"], fields["ExitCode"])
    slurm_ids = {slurm_id for _, slurm_id, _ in submitted}
    assert len(slurm_ids) == len(submitted) and set(accounted) == slurm_ids, (sorted(accounted), submitted)
    assert set(accounted.values()) == {("COMPLETED", "0:0")}
    for _, slurm_id, slurm_log in submitted:  # SLURM's own per-job log (kept by --slurm-keep-successful-logs)
        assert Path(slurm_log).name == f"{slurm_id}.log" and Path(slurm_log).is_file(), slurm_log
    # ... and it was every job of the grid but the Snakefile's localrules (`all` and the small table jobs)
    rules = {re.search(r"/rule_(\w+)/", slurm_log).group(1) for _, _, slurm_log in submitted}
    job_stats = dict(re.findall(r"^(\w+)\s+(\d+)$", log[log.index("Job stats:"):].split("\n\n")[0], flags=re.M))
    total = int(job_stats.pop("total"))
    local = {rule: int(job_stats.pop(rule)) for rule in LOCAL_RULES if rule in job_stats}
    assert local and len(submitted) == total - sum(local.values())
    assert rules == set(job_stats) and "finetune" in rules and "spectra_run" in rules
    # The local jobs ran on this "login node" without a fork server (the workflow's onstart switches it off when the
    # jobs go to a cluster): no server folder, socket or start lock was made in the run's TMPDIR.
    assert not (short_tmpdir / f"weightscape-{os.getuid()}").exists(), sorted(files_under(short_tmpdir))

    # Every output of the local run that is not another seed's exists here too, and nothing is left to do.
    expected = {path for path in files_under(local_dir / "results") if not OTHER_SEED.search("/" + path)}
    assert not expected - files_under(workdir / "results")
    again = snakemake(workdir, "--configfile", str(config), "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stderr[-3000:]

    # The same numbers as the local run's seed, bit for bit.
    def seed_rows(frame):
        rows = frame[frame["seed"] == SEED] if "seed" in frame else frame
        return rows.reset_index(drop=True)

    for table in TABLES:
        pd.testing.assert_frame_equal(seed_rows(pd.read_csv(workdir / table)),
                                      seed_rows(pd.read_csv(local_dir / table)), check_exact=True, obj=table)
    layers = layout.LAYERS_TABLE
    pd.testing.assert_frame_equal(seed_rows(pd.read_parquet(workdir / layers)),
                                  seed_rows(pd.read_parquet(local_dir / layers)), check_exact=True, obj=layers)
