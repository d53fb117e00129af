"""Job start-up without the imports: a local fork server for the pipeline's Python jobs (the job's side).

Every job is a fresh Python process that imports torch, torchvision, timm and pandas before it computes anything,
which takes as long as a whole spectra job's computation. On a workstation the first job starts a server that
imports that stack once (and nothing else: it never runs a torch operation, starts no thread pool and never touches
CUDA) and then forks one child per job. The child is a fresh copy of that clean process - nothing of an earlier job
is in it - and runs the job's adapter with the job's own `snakemake` object, working directory, environment, umask
and standard streams (passed as file descriptors); the job's own process waits for it, forwards
SIGINT/SIGTERM/SIGHUP to it and exits with its status. A child whose job process disappears (kill -9) kills itself.

The same code runs in the same way, so results are bit-identical to a job run in its own process
(tests/test_forkserver.py). What differs: Snakemake's benchmark table measures the waiting process, so its wall
time `s` is right but max_rss and cpu_time are not the job's.

Off under SLURM (each job runs on some node, where a server would only add a process) and, in a run whose jobs go
to a cluster, for the local jobs on the submitting machine (off_when_jobs_go_to_a_cluster), where an NVIDIA driver is
(a fork cannot use CUDA once its parent loaded it), off Linux and with WEIGHTSCAPE_FORK_SERVER=0; a server that
cannot be started or reached makes the job run in its own process. One server per (Python, package code, thread
count): a change to any file of the package starts a new one, and a server exits after IDLE_SECONDS without a job.

Reached through weightscape.execution.job (and off_when_jobs_go_to_a_cluster); .server is the server's side.
Written by hand: multiprocessing's "forkserver" start method serves a parent's worker processes, not independent
processes such as Snakemake's jobs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRELOAD = ("torch", "torch._dynamo", "torchvision.transforms.v2", "timm", "pandas", "scipy.linalg", "scipy.stats",
           "snakemake.script", "weightscape.runs", "weightscape.checkpoints", "weightscape.spectra.outputs",
           "weightscape.spectra.analyze", "weightscape.diversity", "weightscape.tables")
IDLE_SECONDS = 120  # WEIGHTSCAPE_FORK_SERVER_IDLE overrides (the tests' servers leave sooner)
START_SECONDS = 60  # how long a job waits for a server it started to take requests
PROTOCOL = 1
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HEADER = struct.Struct("!Q")
FORKED = False  # True in a child of the server (set by .server): the job runs here


def enabled() -> bool:
    """Whether jobs go through the server: on Linux, not under SLURM, not switched off."""
    return (os.environ.get("WEIGHTSCAPE_FORK_SERVER", "1") != "0" and "SLURM_JOB_ID" not in os.environ
            and sys.platform.startswith("linux") and hasattr(socket, "send_fds")
            and not Path("/dev/nvidiactl").exists())  # CUDA cannot be used in a fork once a parent loaded it


def off_when_jobs_go_to_a_cluster(executor_plugin) -> None:
    """Switch the server off for the rest of this Snakemake run when its executor sends jobs to a cluster
    (`common_settings.non_local_exec`, e.g. the SLURM plugin): the only jobs left to run on this machine are then the
    localrules, on a login node, where a server would stay behind with the whole stack in memory. Called from the
    workflow's `onstart:` (rules/common.smk), in Snakemake's own process, whose environment its jobs inherit."""
    if getattr(getattr(executor_plugin, "common_settings", None), "non_local_exec", False):
        os.environ["WEIGHTSCAPE_FORK_SERVER"] = "0"


def server_key(threads: int) -> str:
    """Identity of a server: the interpreter, every file of the package (path, size, mtime), the thread count."""
    digest = hashlib.sha256(f"{PROTOCOL} {sys.executable} {threads} {PRELOAD}".encode())
    package = Path(__file__).resolve().parents[1]  # all of weightscape
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
    if FORKED or not enabled():
        return
    threads = int(snakemake.threads)
    try:
        conn = connect(threads)
    except OSError as exc:
        print(f"weightscape: fork server unavailable ({exc}); running the job in its own process", file=sys.stderr)
        return
    from weightscape.io import current_umask
    from weightscape.runtime import own_process_start_time

    request = {"started": own_process_start_time(), "adapter": str(Path(adapter).resolve()), "cwd": os.getcwd(),
               "env": dict(os.environ), "sys_path": list(sys.path), "argv": list(sys.argv),
               "umask": current_umask()}
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
        return open_connection(path)
    except (FileNotFoundError, ConnectionRefusedError):
        pass
    with open(path.with_suffix(".start"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return open_connection(path)  # started by the job that held the lock before us
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        with open(path.with_suffix(".log"), "w") as log:
            server = subprocess.Popen([sys.executable, "-m", "weightscape.execution.server", str(path)],
                                      env={**os.environ, **thread_environment(threads)}, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=log, cwd="/", start_new_session=True, close_fds=True)
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                return open_connection(path)
            except (FileNotFoundError, ConnectionRefusedError):
                if server.poll() is not None:
                    raise ConnectionError(f"the fork server exited with status {server.returncode} (see "
                                          f"{path.with_suffix('.log')})") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no fork server at {path} after {START_SECONDS} s") from None
                time.sleep(0.05)


def open_connection(path: Path) -> socket.socket:
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
            socket.send_fds(conn, [frame(json.dumps(request).encode())], [0, 1, 2])
            conn.sendall(frame(globals_blob))
            fork["pid"] = int(receive(conn).decode())
        except (OSError, ConnectionError):
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for signum in fork["held"]:
                signal.raise_signal(signum)
            return None
        for signum in fork["held"]:
            forward(signum, None)
        try:
            status = int(receive(conn).decode())
        except ConnectionError:
            print("weightscape: the fork server went away during the job", file=sys.stderr)
            return 1
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def receive_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive(conn: socket.socket) -> bytes:
    return receive_exactly(conn, HEADER.unpack(receive_exactly(conn, HEADER.size))[0])


def stop_server(threads: int, timeout: float = 600.0) -> bool:
    """Make this code's server for `threads` take no more jobs and wait until it has ended, after the jobs it runs
    have (they are not killed). False when there is none. For a cold start (a measurement of job start-up)."""
    path = socket_path(threads)
    try:
        pid = int(path.with_suffix(".pid").read_text())
        if str(path).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False  # a stale pid file: that process is not our server
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return False
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:  # a zombie (state Z, after the name in parentheses) has ended; its parent may never reap it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
