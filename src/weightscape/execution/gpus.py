"""Several jobs per GPU, declared: what a model-running job asks its scheduler for, and which GPU it then takes.

Snakemake counts resources in whole numbers, so a GPU is SLOTS_PER_GPU slots (the resource `gpu_slots`) and, when
train.device is cuda, a job of a model-running rule asks SLOTS_PER_GPU / train.jobs_per_gpu of them (rules/common.smk
GPU_SLOTS); on any other device it asks none. The default profile's limit `gpu_slots=8` is one GPU whatever
jobs_per_gpu is; a machine with N GPUs passes `--resources gpu_slots=<8 N>`. The same jobs also ask `gpu=1`, which the
SLURM executor turns into `--gpus=1` (a whole GPU per cluster job); locally `gpu` is not limited.

Snakemake never says which GPU a job gets (it sets no CUDA_VISIBLE_DEVICES). So before anything touches CUDA, a job
that holds GPU slots (weightscape.execution.job -> :func:`claim`) takes a *place* on the visible GPU with the fewest
jobs: one of jobs_per_gpu lock files per GPU, held with flock for the life of the process (a killed job frees its
place), chosen under a lock so two jobs never count the same free place; then it narrows CUDA_VISIBLE_DEVICES to that
GPU. With at most N x k such jobs admitted, each of N GPUs runs at most k and they fill evenly. A job that finds every
place taken (another run of this user on the same GPUs, a limit above N x k) waits for one. Under a batch system
(SLURM, PBS, LSF, SGE) the cluster has assigned the job its GPUs: nothing is claimed and its CUDA_VISIBLE_DEVICES is
kept; WEIGHTSCAPE_GPU_PLACES=0 turns the places off anywhere.

The count of GPUs is read without any CUDA call (a CUDA context fixes the visible devices when it is created):
CUDA_VISIBLE_DEVICES when set, else the NVIDIA device nodes /dev/nvidia0, /dev/nvidia1, ... (tests stand in for it
with CUDA_VISIBLE_DEVICES on machines without a GPU).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, MutableMapping

SLOTS_PER_GPU = 8  # every allowed train.jobs_per_gpu (the schema's enum: 1, 2, 4, 8) divides it
BATCH_JOB_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")  # set in a job a batch system started
POLL_SECONDS = 0.5
log = logging.getLogger(__name__)


def slots_per_job(device: str, jobs_per_gpu: int) -> int:
    """The `gpu_slots` one job of a model-running rule asks for: a 1/jobs_per_gpu share of a GPU on cuda, else 0."""
    if SLOTS_PER_GPU % jobs_per_gpu:
        raise ValueError(f"train.jobs_per_gpu must divide {SLOTS_PER_GPU}, got {jobs_per_gpu}")
    return SLOTS_PER_GPU // jobs_per_gpu if device == "cuda" else 0


def visible_gpus(environ: MutableMapping[str, str] = os.environ, devices: Path = Path("/dev")) -> list[str]:
    """The GPUs this process may use, each as CUDA_VISIBLE_DEVICES would name it: that variable's entries when it is
    set (empty: none), else the ordinals 0 ... N-1 of the N NVIDIA device nodes."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [item.strip() for item in listed.split(",") if item.strip()]
    nodes = [path for path in devices.glob("nvidia*") if re.fullmatch(r"nvidia\d+", path.name)]
    return [str(i) for i in range(len(nodes))]


def places_folder() -> Path:
    """Where the places are: $TMPDIR/weightscape-<uid>/gpus, private to this user (as the fork server's folder)."""
    folder = Path(tempfile.gettempdir()) / f"weightscape-{os.getuid()}" / "gpus"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@dataclass
class Place:
    """Place `index` of `places` on GPU `gpu`, held as long as this object's lock file stays open."""

    gpu: str
    index: int
    places: int
    held_by_others: int
    handle: IO = field(repr=False)

    def release(self) -> None:
        self.handle.close()


def _try_lock(path: Path) -> IO | None:
    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def take_place(gpus: list[str], places: int, folder: Path, poll: float = POLL_SECONDS) -> Place:
    """A free place on the GPU of `gpus` with the fewest taken (the first such GPU on a tie), `places` per GPU; waits
    while every place is taken."""
    waiting = False
    while True:
        with open(folder / "choose.lock", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)  # one chooser at a time: counting and taking are one step
            best = None
            for gpu in gpus:
                name = re.sub(r"[^\w.-]", "_", gpu)
                held, free = 0, None
                for index in range(places):
                    handle = _try_lock(folder / f"gpu-{name}.{index}")
                    if handle is None:
                        held += 1
                    elif free is None:
                        free = (index, handle)
                    else:
                        handle.close()
                if free is not None and (best is None or held < best.held_by_others):
                    if best is not None:
                        best.release()
                    best = Place(gpu, free[0], places, held, free[1])
                elif free is not None:
                    free[1].close()
            if best is not None:
                return best
        if not waiting:
            log.info("every place on GPUs %s is taken (%d jobs per GPU); waiting for one", ",".join(gpus), places)
            waiting = True
        time.sleep(poll)


def claim(slots: int, environ: MutableMapping[str, str] = os.environ, folder: Path | None = None) -> Place | None:
    """For a job holding `slots` GPU slots (its `gpu_slots` resource): take a place on a GPU and make it the only
    GPU this process sees (CUDA_VISIBLE_DEVICES); any job with slots gets CUDA's lazy module loading. None - and
    no GPU narrowed - for a job without slots, under a batch system, with the places off, or where no GPU is
    visible (train.device: cuda then fails with its own message)."""
    if slots <= 0:
        return None
    # kernels load on their first launch instead of all at context creation (CUDA's default since 12.2; set for
    # older drivers and toolkits); the same kernels run, so the numbers are the same
    environ.setdefault("CUDA_MODULE_LOADING", "LAZY")
    gpus = visible_gpus(environ)
    if environ.get("WEIGHTSCAPE_GPU_PLACES") == "0" or any(v in environ for v in BATCH_JOB_VARIABLES) or not gpus:
        return None
    place = take_place(gpus, max(SLOTS_PER_GPU // slots, 1), folder or places_folder())
    environ["CUDA_VISIBLE_DEVICES"] = place.gpu
    log.info("GPU %s of %s (place %d of %d, %d other job(s) on it)", place.gpu, ",".join(gpus), place.index + 1,
             place.places, place.held_by_others)
    return place
