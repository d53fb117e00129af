"""One pending wake-up for Snakemake's scheduler instead of one more per job: a workaround, applied by
rules/common.smk in Snakemake's own process, for the growing CPU time of its job-rate limiter (snakemake 9.x).

With a job-rate limit (always set: the command line's default is 100/1s), every pass of Snakemake's scheduling
loop arms a `threading.Timer(timespan)` that wakes the loop again, and that pass arms the next timer. So each job
start or finish adds a chain of passes that runs until the workflow ends (the loop discussed in snakemake PR #3744).
In the three-seed default run (172 jobs) the scheduler had ~165 chains by the end, ran ~165 passes a second, and
its process used 148 CPU-s - 7 % of the two cores, taken from the jobs beside it. The timers are not daemon
threads either, so Python waits for the last ones when Snakemake exits.

One pending timer does the same job: any pass re-evaluates every ready job, and a pass that wants a wake-up arms a
timer whenever none is pending, so the loop still wakes within one timespan of asking to. Scheduling decisions are
unchanged; only the redundant passes go. benchmarks/scheduler.py measures it.
"""

from __future__ import annotations

import threading


def _schedule_reevaluation(self, delay: float) -> None:
    """JobScheduler._schedule_reevalutation that arms a daemon timer only when none of this scheduler is pending."""
    if getattr(self, "_weightscape_wakeup_pending", False):
        return
    self._weightscape_wakeup_pending = True

    def wake() -> None:
        self._weightscape_wakeup_pending = False  # before the release: the pass it starts may arm the next one
        self._open_jobs.release()

    timer = threading.Timer(delay, wake)
    timer.daemon = True
    timer.start()


def one_pending_wakeup() -> bool:
    """Install _schedule_reevaluation on Snakemake's JobScheduler; True when installed (or already), False when this
    Snakemake has no such method (then nothing changes)."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    if not hasattr(JobScheduler, "_schedule_reevalutation"):  # sic: Snakemake's spelling
        return False
    JobScheduler._schedule_reevalutation = _schedule_reevaluation
    return True
