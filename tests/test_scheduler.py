"""weightscape.scheduler_wakeups: Snakemake's scheduler keeps one pending wake-up instead of one more per job."""

import re
import subprocess
import sys
import threading

from conftest import REPO

from weightscape.scheduler_wakeups import _schedule_reevaluation, one_pending_wakeup


class FakeScheduler:
    """What the replacement touches of Snakemake's JobScheduler: the semaphore its loop waits on."""

    def __init__(self):
        self._open_jobs = threading.Semaphore(0)


def test_one_timer_is_pending_however_often_a_wakeup_is_asked_for():
    scheduler, before = FakeScheduler(), set(threading.enumerate())
    for _ in range(5):
        _schedule_reevaluation(scheduler, 0.2)
    timers = set(threading.enumerate()) - before
    assert len(timers) == 1 and all(timer.daemon for timer in timers)  # Python does not wait for it at exit
    assert not scheduler._open_jobs.acquire(timeout=0.05)  # not before its delay
    assert scheduler._open_jobs.acquire(timeout=2)  # then the loop wakes, once
    assert not scheduler._open_jobs.acquire(timeout=0.3)
    # the next request after the wake-up arms a new timer
    _schedule_reevaluation(scheduler, 0.05)
    assert scheduler._open_jobs.acquire(timeout=2)


def test_schedulers_do_not_share_their_pending_wakeup():
    first, second = FakeScheduler(), FakeScheduler()
    _schedule_reevaluation(first, 0.05)
    _schedule_reevaluation(second, 0.05)
    assert first._open_jobs.acquire(timeout=2) and second._open_jobs.acquire(timeout=2)


def test_installed_on_snakemakes_job_scheduler():
    from snakemake.scheduling.job_scheduler import JobScheduler

    original = JobScheduler._schedule_reevalutation
    try:
        assert one_pending_wakeup()
        assert JobScheduler._schedule_reevalutation is _schedule_reevaluation
    finally:
        JobScheduler._schedule_reevalutation = original


def test_a_real_run_keeps_one_timer_and_finishes_every_job():
    """benchmarks/scheduler.py on a small grid of sleeping jobs: Snakemake as it is gains a timer thread per job,
    with the fix its thread count stays flat, and both runs finish every job."""
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "scheduler.py"), "--jobs", "16", "--seconds",
                             "0.3", "--inputs", "3"], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    threads = {name: int(count) for name, count in
               re.findall(r"^(snakemake as is|one pending wake-up)\s+[\d.]+\s+[\d.]+\s+(\d+)$", result.stdout, re.M)}
    assert set(threads) == {"snakemake as is", "one pending wake-up"}, result.stdout
    # as is: a timer chain per job started or finished (16 sleeping jobs); fixed: the main thread, the executor's
    # workers and at most one timer
    assert threads["snakemake as is"] >= 16 and threads["one pending wake-up"] <= 8, threads


PARSE_AND_REPORT = """
import sys
from snakemake.cli import main
from snakemake.scheduling.job_scheduler import JobScheduler
try:
    main(["--snakefile", sys.argv[1], "--directory", sys.argv[2], "--list-rules", "--quiet"])
except SystemExit as exit:
    assert not exit.code, exit.code
print(JobScheduler._schedule_reevalutation.__module__)
"""


def test_the_pipelines_snakefile_installs_the_fix(tmp_path):
    """Parsing the pipeline's Snakefile (rules/common.smk) puts the fix on Snakemake's scheduler in its own process:
    without that line the runs would keep their timer chains and no other test would notice."""
    (tmp_path / "config.yaml").write_bytes((REPO / "config.yaml").read_bytes())
    result = subprocess.run([sys.executable, "-c", PARSE_AND_REPORT, str(REPO / "Snakefile"), str(tmp_path)],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "weightscape.scheduler_wakeups", result.stdout
