"""Job start-up without the imports: a local fork server for the pipeline's Python jobs.

Every job is a fresh Python process that imports torch, torchvision, timm and pandas before it computes anything:
~5 s a job on our 2-core machines, as long as a whole spectra job's computation, and 69 fine-tunes + 69 spectra
jobs in the default three-seed grid. On a workstation the first job starts a server that imports that stack once
(and nothing else: it never runs a torch operation, starts no thread pool and never touches CUDA) and then forks
one child per job. The child is a fresh copy of that clean process - nothing of an earlier job is in it - and runs
the job's adapter with the job's own `snakemake` object, working directory, environment, umask and standard
streams (passed as file descriptors); the job's own process waits for it, forwards SIGINT/SIGTERM/SIGHUP to it and
exits with its status. A child whose job process disappears (kill -9) kills itself.

The same code runs in the same way, so results are bit-identical to a job run in its own process
(tests/test_forkserver.py). What differs: Snakemake's benchmark table measures the waiting process, so its wall
time `s` is right but max_rss and cpu_time are not the job's.

Off under SLURM (each job runs on some node, where a server would only add a process) and with
WEIGHTSCAPE_FORK_SERVER=0; a server that cannot be started or reached makes the job run in its own process as
before. One server per (Python, package code, thread count): a change to any file of the package starts a new one,
and a server exits after IDLE_SECONDS without a job.

Written by hand: multiprocessing's "forkserver" start method serves a parent's worker processes, not independent
processes such as Snakemake's jobs, and nothing on PyPI we could find does this.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PRELOAD = ("torch", "torch._dynamo", "torchvision.transforms.v2", "timm", "pandas", "scipy.linalg", "scipy.stats",
           "snakemake.script", "weightscape.runs", "weightscape.checkpoints", "weightscape.spectra.outputs",
           "weightscape.spectra.analyze", "weightscape.diversity", "weightscape.tables")
IDLE_SECONDS = 120  # WEIGHTSCAPE_FORK_SERVER_IDLE overrides (the tests' servers leave sooner)
START_SECONDS = 60  # how long a job waits for a server it started to take requests
PROTOCOL = 1
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_HEADER = struct.Struct("!Q")
_FORKED = False  # True in a child of the server: the job runs here
JOB_STARTED_AT: float | None = None  # in a fork: time.time() at which the job's own process started
_WAKE: tuple[int, int] = ()  # the server's self-pipe for SIGCHLD


def enabled() -> bool:
    """Whether jobs go through the server: on Linux, not under SLURM, not switched off."""
    return (os.environ.get("WEIGHTSCAPE_FORK_SERVER", "1") != "0" and "SLURM_JOB_ID" not in os.environ
            and sys.platform.startswith("linux") and hasattr(socket, "send_fds")
            and not Path("/dev/nvidiactl").exists())  # CUDA cannot be used in a fork once a parent loaded it


def server_key(threads: int) -> str:
    """Identity of a server: the interpreter, every file of the package (path, size, mtime), the thread count."""
    digest = hashlib.sha256(f"{PROTOCOL} {sys.executable} {threads} {PRELOAD}".encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            stat = path.stat()
            digest.update(f"{path.relative_to(package)} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def socket_path(threads: int) -> Path:
    """The server's socket, in a directory only this user can enter (whoever can connect runs code as us)."""
    base = Path(tempfile.gettempdir())
    if len(str(base)) > 60:  # AF_UNIX paths are limited to 107 bytes
        base = Path("/tmp")
    folder = base / f"weightscape-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise PermissionError(f"{folder}: not private to this user")
    return folder / f"{server_key(threads)}.sock"


def thread_environment(threads: int) -> dict[str, str]:
    from weightscape.runtime import THREAD_VARIABLES

    return {name: str(threads) for name in THREAD_VARIABLES}


# ------------------------------------------------------------------------------------------------ the job's side
def delegate(snakemake, adapter: str | Path) -> None:
    """Run this Snakemake job in a fork of the local server and exit with its status. Returns - the caller goes on
    and runs the job itself - in the fork, when the server is off, and when no server can be started or reached."""
    if _FORKED or not enabled():
        return
    threads = int(snakemake.threads)
    try:
        conn = connect(threads)
    except OSError as exc:
        print(f"weightscape: fork server unavailable ({exc}); running the job in its own process", file=sys.stderr)
        return
    from weightscape.runtime import own_process_start_time

    request = {"started": own_process_start_time(), "adapter": str(Path(adapter).resolve()), "cwd": os.getcwd(),
               "env": dict(os.environ), "sys_path": list(sys.path), "argv": list(sys.argv),
               "umask": _current_umask()}
    code = run_remote(conn, request, pickle.dumps({"snakemake": snakemake}, protocol=4))
    if code is None:  # the server closed before forking (it was just ending, idle)
        print("weightscape: the fork server did not take the job; running it in its own process", file=sys.stderr)
        return
    sys.exit(code)


def connect(threads: int) -> socket.socket:
    """A connection to the server for `threads`, starting one when there is none (one job starts it while the
    others that arrive meanwhile wait for it; its import errors go to the .log beside the socket)."""
    path = socket_path(threads)
    try:
        return _connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        pass
    with open(path.with_suffix(".start"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _connect(path)  # started by the job that held the lock before us
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        with open(path.with_suffix(".log"), "w") as log:
            server = subprocess.Popen([sys.executable, "-m", "weightscape.forkserver", str(path)],
                                      env={**os.environ, **thread_environment(threads)}, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=log, cwd="/", start_new_session=True, close_fds=True)
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                return _connect(path)
            except (FileNotFoundError, ConnectionRefusedError):
                if server.poll() is not None:
                    raise ConnectionError(f"the fork server exited with status {server.returncode} (see "
                                          f"{path.with_suffix('.log')})") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no fork server at {path} after {START_SECONDS} s") from None
                time.sleep(0.05)


def _connect(path: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        raise
    return conn


def run_remote(conn: socket.socket, request: dict, globals_blob: bytes) -> int | None:
    """Send the request with this process's stdin/stdout/stderr, wait for the fork's exit status, return it as an
    exit code (128 + N for a fork killed by signal N); None when the server closed the connection before forking.
    A signal that arrives before the fork's pid is known is held and forwarded once it is (or, when the server did
    not take the job, acted on here), so that no window loses one."""
    fork = {"pid": None, "held": []}

    def forward(signum, _frame):
        if fork["pid"] is None:
            fork["held"].append(signum)
            return
        try:
            os.kill(fork["pid"], signum)
        except ProcessLookupError:
            pass

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    with conn:
        try:
            socket.send_fds(conn, [_frame(json.dumps(request).encode())], [0, 1, 2])
            conn.sendall(_frame(globals_blob))
            fork["pid"] = int(_receive(conn).decode())
        except (OSError, ConnectionError):
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for signum in fork["held"]:
                signal.raise_signal(signum)
            return None
        for signum in fork["held"]:
            forward(signum, None)
        try:
            status = int(_receive(conn).decode())
        except ConnectionError:
            print("weightscape: the fork server went away during the job", file=sys.stderr)
            return 1
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def _receive_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(conn: socket.socket) -> bytes:
    return _receive_exactly(conn, _HEADER.unpack(_receive_exactly(conn, _HEADER.size))[0])


# --------------------------------------------------------------------------------------------- the server's side
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
    global _WAKE
    wake_read, wake_write = _WAKE = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD wakes select() up
    jobs: dict[int, socket.socket] = {}
    last = time.monotonic()
    try:
        while jobs or time.monotonic() - last < idle_seconds:
            try:
                ready, _, _ = select.select([listener, wake_read], [], [], 1.0)
            except InterruptedError:
                ready = []
            if wake_read in ready:
                os.read(wake_read, 4096)
            _reap(jobs)
            if listener in ready:
                last = time.monotonic()
                _accept(listener, jobs)
            if jobs:
                last = time.monotonic()
    finally:
        if path.exists() and path.stat().st_ino == bound:  # still ours, not a newer server's
            path.unlink()
        listener.close()


def _bind(path: Path) -> socket.socket | None:
    """The listening socket; None when another server already listens there."""
    with open(path.with_suffix(".bind"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _connect(path).close()
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
        head, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
        head += _receive_exactly(conn, _HEADER.size - len(head))
        request = json.loads(_receive_exactly(conn, _HEADER.unpack(head)[0]))
        globals_blob = _receive(conn)
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
        conn.sendall(_frame(str(pid).encode()))
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
                conn.sendall(_frame(str(status).encode()))
            except OSError:
                pass
            conn.close()


def _run_child(listener: socket.socket, conn: socket.socket, request: dict, globals_blob: bytes,
               fds: list[int], other_jobs: list[socket.socket]) -> None:
    """In the fork: become the job's process and run its adapter as Snakemake would; exit with its status."""
    global _FORKED, JOB_STARTED_AT
    code = 1
    try:
        _FORKED, JOB_STARTED_AT = True, request["started"]
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


if __name__ == "__main__":  # run from the imported module, whose _FORKED the children's adapters see
    from weightscape.forkserver import serve as serve_from_package

    serve_from_package(Path(sys.argv[1]))
