"""The fork server's side (see weightscape.execution.forkserver): import the stack once, then fork one clean child
per job and run the job's adapter in it.

    python -m weightscape.execution.server SOCKET     (started by forkserver.connect)
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from weightscape import runtime
from weightscape.execution import forkserver
from weightscape.execution.forkserver import (
    FORWARDED_SIGNALS,
    HEADER,
    IDLE_SECONDS,
    PRELOAD,
    frame,
    open_connection,
    receive,
    receive_exactly,
)

_WAKE: tuple[int, ...] = ()  # the server's self-pipe for SIGCHLD and SIGTERM


def serve(path: Path, idle_seconds: float | None = None) -> None:
    """Import PRELOAD, then fork a child for every request on `path` until idle for `idle_seconds`."""
    import importlib

    if idle_seconds is None:
        idle_seconds = float(os.environ.get("WEIGHTSCAPE_FORK_SERVER_IDLE", IDLE_SECONDS))
    for module in PRELOAD:
        importlib.import_module(module)
    if sys.modules["torch"].cuda.is_initialized():  # a fork could not use CUDA: let the jobs run on their own
        raise RuntimeError("CUDA was initialized while importing; a fork server cannot serve CUDA jobs")
    listener = _bind(path)
    if listener is None:
        return
    bound = path.stat().st_ino
    path.with_suffix(".pid").write_text(str(os.getpid()))
    global _WAKE
    wake_read, wake_write = _WAKE = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD wakes select() up
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))  # stop_server: take no job, finish those here
    jobs: dict[int, socket.socket] = {}
    last = time.monotonic()
    try:
        while jobs or (not stopping and time.monotonic() - last < idle_seconds):
            try:
                ready, _, _ = select.select([wake_read] if stopping else [listener, wake_read], [], [], 1.0)
            except InterruptedError:
                ready = []
            if wake_read in ready:
                os.read(wake_read, 4096)
            _reap(jobs)
            if listener in ready:
                last = time.monotonic()
                _accept(listener, jobs)
            if stopping and listener.fileno() >= 0:
                _release(path, bound, listener)  # the next job starts a new server
            if jobs:
                last = time.monotonic()
    finally:
        _release(path, bound, listener)


def _release(path: Path, bound: int, listener: socket.socket) -> None:
    """Close the listening socket and remove its file and the pid file, unless a newer server has replaced them."""
    listener.close()
    if path.exists() and path.stat().st_ino == bound:
        path.unlink()
        path.with_suffix(".pid").unlink(missing_ok=True)


def _bind(path: Path) -> socket.socket | None:
    """The listening socket; None when another server already listens there."""
    with open(path.with_suffix(".bind"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            open_connection(path).close()
            return None  # a live server: leave it alone
        except (FileNotFoundError, ConnectionRefusedError):
            path.unlink(missing_ok=True)  # a dead server's socket file
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(64)
        return listener


def _accept(listener: socket.socket, jobs: dict[int, socket.socket]) -> None:
    conn, _ = listener.accept()
    conn.settimeout(30)
    fds: list[int] = []
    try:
        # the descriptors ride on the first bytes: read those with recv_fds (a plain recv would drop them)
        head, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
        head += receive_exactly(conn, HEADER.size - len(head))
        request = json.loads(receive_exactly(conn, HEADER.unpack(head)[0]))
        globals_blob = receive(conn)
        if len(fds) != 3:
            raise ValueError(f"expected the job's 3 standard streams, got {len(fds)} descriptors")
    except (OSError, ValueError):
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    pid = os.fork()
    if pid == 0:
        _run_child(listener, conn, request, globals_blob, fds, list(jobs.values()))  # never returns
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(frame(str(pid).encode()))
    except OSError:
        pass
    jobs[pid] = conn


def _reap(jobs: dict[int, socket.socket]) -> None:
    while jobs:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = jobs.pop(pid, None)
        if conn is not None:
            try:
                conn.sendall(frame(str(status).encode()))
            except OSError:
                pass
            conn.close()


def _run_child(listener: socket.socket, conn: socket.socket, request: dict, globals_blob: bytes,
               fds: list[int], other_jobs: list[socket.socket]) -> None:
    """In the fork: become the job's process and run its adapter as Snakemake would; exit with its status."""
    code = 1
    try:
        forkserver.FORKED = True  # what the job sees
        runtime.JOB_STARTED_AT = request["started"]
        signal.set_wakeup_fd(-1)
        for fd in _WAKE:
            os.close(fd)
        for signum in (signal.SIGCHLD, *FORWARDED_SIGNALS):
            signal.signal(signum, signal.SIG_DFL)
        listener.close()
        for other in other_jobs:  # the server's ends of the jobs that run beside this one are not this job's
            other.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["WEIGHTSCAPE_FORK_SERVER"] = "0"  # a second guard: nothing in the job delegates again
        sys.path[:] = request["sys_path"]
        sys.argv[:] = request["argv"]
        _reseed()
        threading.Thread(target=_die_with_job, args=(conn,), daemon=True).start()
        import runpy

        runpy.run_path(request["adapter"], init_globals=pickle.loads(globals_blob), run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, (int, type(None))):
            print(exit_.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _die_with_job(conn: socket.socket) -> None:
    """The job's process sends nothing more: end of stream means it is gone (killed), and so must the fork be."""
    conn.settimeout(None)
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def _reseed() -> None:
    """Fresh global random states, as a new process gets (the server's would be shared by all its children)."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
