"""How the pipeline's jobs run, kept apart from what they compute.

    job(snakemake, __file__)   the one helper every adapter in workflow_scripts/ opens with: the job's set-up
    forkserver, server         job start-up without the imports (a local fork server), reached through `job`
                               (and switched off for cluster runs by rules/common.smk's onstart)
    gpus                       several jobs per GPU: the slots a job asks for, the GPU it then takes (via `job`)
    scheduler                  a workaround for Snakemake's scheduler, installed by rules/common.smk

Nothing here changes a result: a job computes the same bytes with or without any of it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

from weightscape import runtime
from weightscape.execution import forkserver, gpus
from weightscape.settings import Execution, execution_only

__all__ = ["Job", "job"]


class Job:
    """What an adapter gets from :func:`job`: the rule's log stream, the execution settings (the only part of
    ``snakemake.config`` a job reads: weightscape.settings.execution_only) and progress bars into the log."""

    def __init__(self, snakemake, log: TextIO, gpu: gpus.Place | None = None):
        self.log = log
        self.gpu = gpu  # the place on a GPU this job holds (weightscape.execution.gpus), kept open while it runs
        self._snakemake = snakemake

    def _config(self) -> dict:
        return execution_only(self._snakemake.config)

    @property
    def execution(self) -> Execution:
        """Device, threads (the job's own), augmentation workers and evaluation batch size."""
        return Execution.from_config(self._config(), threads=int(self._snakemake.threads))

    def download(self, dataset: str) -> bool:
        """Whether the source reader of `dataset` may fetch missing files (datasets[].download)."""
        return next(d["download"] for d in self._config()["datasets"] if d["name"] == dataset)

    def checkpoint_every(self, generator: str) -> int:
        """Steps between the resumable checkpoints of `generator`'s training (generators[].train)."""
        return next(g["train"]["checkpoint_every"] for g in self._config()["generators"] if g["name"] == generator)

    def progress(self, desc: str) -> Callable[[Iterable], Iterable]:
        """A progress-bar wrapper for a library function's `progress=` argument, writing to the log."""
        return lambda iterable, **kwargs: runtime.progress(iterable, self.log, desc=desc, **kwargs)


@contextmanager
def job(snakemake, adapter: str | Path) -> Iterator[Job]:
    """Run the body as Snakemake job `snakemake` of the adapter file `adapter` (its ``__file__``).

    First the job goes to a fork of the local fork server when there is one (weightscape.execution.forkserver:
    the fork runs the adapter again, where this returns at once, and this process exits with the fork's status);
    then logging (and progress bars) go to the rule's log file; a job holding GPU slots (its `gpu_slots` resource)
    takes a place on one GPU before anything touches CUDA (weightscape.execution.gpus); the process uses exactly
    the job's threads and keeps freed memory for reuse (weightscape.runtime). An error in the body is logged with
    its traceback and ends the job with status 1 and one line on stderr."""
    forkserver.delegate(snakemake, adapter)
    with runtime.job_logging(snakemake.log[0] if snakemake.log else None) as log:
        place = gpus.claim(int(getattr(snakemake, "resources", {}).get("gpu_slots", 0) or 0))
        runtime.reuse_freed_memory()
        runtime.pin_threads(int(snakemake.threads))
        yield Job(snakemake, log, place)
