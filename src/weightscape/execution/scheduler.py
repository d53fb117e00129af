"""One pending wake-up for Snakemake's scheduler instead of one more per job: a workaround for the growing CPU time
of Snakemake's job-rate limiter, applied by rules/common.smk (through :func:`install`) in Snakemake's own process.

With a job-rate limit (always set: the command line's default is 100/1s), every pass of Snakemake's scheduling
loop arms a `threading.Timer(timespan)` that wakes the loop again, and that pass arms the next timer. So each job
start or finish adds a chain of passes that runs until the workflow ends (the loop discussed in snakemake PR #3744),
and the scheduler's process takes CPU time from the jobs beside it (benchmarks/RESULTS.md). The timers are not
daemon threads either, so Python waits for the last ones when Snakemake exits.

One pending timer does the same job: any pass re-evaluates every ready job, and a pass that wants a wake-up arms a
timer whenever none is pending, so the loop still wakes within one timespan of asking to. Scheduling decisions are
unchanged; only the redundant passes go.

The method it replaces is private to Snakemake, so it is replaced only on the releases it was measured on
(MEASURED_ON); on any other, or where the method is missing, Snakemake is left as it is and one line says so.
"""

from __future__ import annotations

import sys
import threading

#: the Snakemake releases (major.minor) the workaround was measured on
MEASURED_ON = ("9.27",)
#: the method it replaces (sic: Snakemake's spelling)
METHOD = "_schedule_reevalutation"


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


def install(scheduler: type | None = None, version: str | None = None) -> bool:
    """Put one pending wake-up on Snakemake's JobScheduler (or on the stand-in class `scheduler`, with `version` as
    Snakemake's version: tests); True when installed. False, with one line on stderr, when this Snakemake is not a
    release it was measured on or has no such method: then the scheduler is left as it is."""
    if version is None:
        from snakemake import __version__ as version
    if scheduler is None:
        try:
            from snakemake.scheduling.job_scheduler import JobScheduler as scheduler
        except ImportError:
            scheduler = None
    release = ".".join(version.split(".")[:2])
    if release not in MEASURED_ON:
        reason = f"measured on Snakemake {', '.join(MEASURED_ON)} only"
    elif not hasattr(scheduler, METHOD):
        reason = f"this Snakemake has no JobScheduler.{METHOD}"
    else:
        setattr(scheduler, METHOD, _schedule_reevaluation)
        return True
    print(f"weightscape: Snakemake {version}: scheduler workaround not applied ({reason}); the scheduler runs as "
          f"Snakemake ships it", file=sys.stderr)
    return False
