"""weightscape.execution.scheduler: Snakemake's scheduler keeps one pending wake-up instead of one more per job, on
the Snakemake releases the workaround was measured on; any other is left as it is, with one line that says so."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import REPO

from weightscape.execution.scheduler import MEASURED_ON, METHOD, _schedule_reevaluation, install


class StandIn:
    """What the replacement touches of Snakemake's JobScheduler: the semaphore its loop waits on, and the method."""

    def __init__(self):
        self._open_jobs = threading.Semaphore(0)

    def _schedule_reevalutation(self, delay):  # sic: Snakemake's spelling
        return "Snakemake's own"


def test_one_timer_is_pending_however_often_a_wakeup_is_asked_for():
    scheduler, before = StandIn(), set(threading.enumerate())
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
    first, second = StandIn(), StandIn()
    _schedule_reevaluation(first, 0.05)
    _schedule_reevaluation(second, 0.05)
    assert first._open_jobs.acquire(timeout=2) and second._open_jobs.acquire(timeout=2)


def test_installed_only_on_a_measured_release(capsys):
    class Measured(StandIn):
        pass

    assert install(Measured, version=f"{MEASURED_ON[0]}.3")
    assert getattr(Measured, METHOD) is _schedule_reevaluation
    assert capsys.readouterr().err == ""


def test_another_release_runs_unchanged_and_says_so_in_one_line(capsys):
    class Newer(StandIn):
        pass

    major, minor = map(int, MEASURED_ON[-1].split("."))
    assert not install(Newer, version=f"{major}.{minor + 1}.0")
    assert Newer()._schedule_reevalutation(1.0) == "Snakemake's own"
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"weightscape: Snakemake {major}.{minor + 1}.0: scheduler workaround not applied")


def test_a_measured_release_without_the_method_runs_unchanged_and_says_so(capsys):
    class Renamed:
        pass

    assert not install(Renamed, version=f"{MEASURED_ON[0]}.0")
    assert not hasattr(Renamed, METHOD)
    [line] = capsys.readouterr().err.splitlines()
    assert f"this Snakemake has no JobScheduler.{METHOD}" in line


SLEEPING_GRID = """\
rule all:
    input: expand("done/{{i}}.txt", i=range({jobs}))

rule sleep:
    output: "done/{{i}}.txt"
    shell: "sleep {seconds} && touch {{output}}"
"""
FIX = "from weightscape.execution import scheduler\n\nscheduler.install()\n\n"


def peak_threads(tmp_path: Path, fixed: bool, jobs: int = 16) -> int:
    """The most threads the snakemake process had while it ran a grid of sleeping jobs (all of them finished)."""
    folder = tmp_path / ("fixed" if fixed else "as_is")
    folder.mkdir()
    (folder / "Snakefile").write_text(FIX * fixed + SLEEPING_GRID.format(jobs=jobs, seconds=0.3))
    process = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", "all"], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    threads = 0
    while process.poll() is None:
        try:
            threads = max(threads, len(os.listdir(f"/proc/{process.pid}/task")))
        except OSError:  # it has just exited
            pass
        time.sleep(0.1)
    assert process.returncode == 0, process.stderr.read()[-2000:]
    assert len(list((folder / "done").iterdir())) == jobs
    return threads


def test_a_real_run_keeps_one_timer_and_finishes_every_job(tmp_path):
    """Snakemake as it is gains a timer chain per job started or finished; with the workaround its thread count
    stays at the main thread, the executor's workers and at most one timer."""
    assert peak_threads(tmp_path, fixed=False) >= 16 >= 8 >= peak_threads(tmp_path, fixed=True)


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


def test_the_pipelines_snakefile_installs_the_workaround(tmp_path):
    """Parsing the pipeline's Snakefile (rules/common.smk) puts the workaround on Snakemake's scheduler in its own
    process: without that line the runs would keep their timer chains and no other test would notice."""
    (tmp_path / "config.yaml").write_bytes((REPO / "config.yaml").read_bytes())
    result = subprocess.run([sys.executable, "-c", PARSE_AND_REPORT, str(REPO / "Snakefile"), str(tmp_path)],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "weightscape.execution.scheduler", result.stdout
