"""Per-job runtime set-up: thread pinning, device choice, logging to the rule's log file, progress bars."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def pin_threads(threads: int) -> None:
    """Use exactly `threads` CPU threads: oversubscribing a busy 2-core machine made steps 5-100x slower."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process (e.g. in tests)
        pass


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
