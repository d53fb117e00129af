"""Per-process runtime set-up: thread pinning, memory reuse, device choice, logging to a rule's log file and
progress bars (weightscape.execution.job sets up every job with them)."""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
# glibc mallopt(3) parameters and the values reuse_freed_memory sets
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit machines
TRIM_THRESHOLD = 1 << 30


def reuse_freed_memory() -> bool:
    """Keep freed memory in the process for the next batch instead of handing it back to the OS (glibc only;
    False elsewhere or when glibc refuses).

    With glibc's defaults every batch's activations of more than a few MiB are mmap'ed fresh or trimmed on free,
    so each batch page-faults its whole working set in again (tests/test_train.py counts the faults). Buffers of
    up to 32 MiB now come from the heap and stay there. Only where memory comes from changes, never the
    arithmetic: results are bit-identical.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False


def pin_threads(threads: int) -> None:
    """Use exactly `threads` CPU threads in this process and the libraries it loads (torch, OpenMP, BLAS): jobs
    side by side on a busy machine must not oversubscribe its cores. Threads only; memory is reuse_freed_memory."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process (e.g. in tests)
        pass


JOB_STARTED_AT: float | None = None  # set in a fork of the fork server: when its job's process began


def process_start_time() -> float:
    """time.time() at which this job's process began - for a job run by the fork server, the process Snakemake
    started, which then waited for the fork (weightscape.execution.forkserver)."""
    return JOB_STARTED_AT if JOB_STARTED_AT is not None else own_process_start_time()


def own_process_start_time() -> float:
    """time.time() at which this process began, from /proc (10 ms resolution; psutil's create_time adds a
    whole-second boot time and can be up to 1 s off)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        import psutil  # a snakemake dependency

        return psutil.Process().create_time()


def pick_device(preference: str = "auto"):
    """CUDA when asked for or present (honouring CUDA_VISIBLE_DEVICES), else the CPU."""
    import torch

    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is visible")
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


@contextmanager
def job_logging(log_path: str | Path | None) -> Iterator[TextIO]:
    """Send logging (and progress bars, through the yielded stream) to the rule's log file.

    Errors are also printed to stderr as one line, so the console says what failed without a traceback wall;
    the full traceback stays in the log.
    """
    stream = open(log_path, "a", buffering=1) if log_path else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    except Exception as exc:
        logging.getLogger("weightscape").exception("job failed")
        print(f"weightscape: {type(exc).__name__}: {exc}" + (f" (details in {log_path})" if log_path else ""),
              file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        root.removeHandler(handler)
        if log_path:
            stream.close()


def progress(iterable, stream: TextIO | None = None, **kwargs):
    """A tqdm bar; in a log file (not a terminal) it updates at most every 10 s so logs stay readable."""
    from tqdm.auto import tqdm

    stream = stream or sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()
    return tqdm(iterable, file=stream, mininterval=0.1 if interactive else 10.0, dynamic_ncols=interactive,
                ascii=not interactive, **kwargs)
