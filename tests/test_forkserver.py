"""The local fork server (weightscape.execution.forkserver), as every adapter reaches it (weightscape.execution.job):
a job run through it computes the same bytes as in its own process, sees its own working directory, environment,
umask and streams, returns its exit status, and dies with its job's process; it is off under SLURM and for the local
jobs of a run whose jobs go to a cluster, and a server that cannot start leaves the job to run on its own. The
servers a test starts are ended by their own pids."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="the fork server is off on CUDA machines")

# A job as Snakemake's `script:` runs it: the preamble defines `snakemake` and `__file__`, then the adapter runs.
DRIVER = textwrap.dedent("""
    import sys, types
    adapter, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    snakemake = types.SimpleNamespace(threads=threads, output=[out], input=[], params={}, log=[], config={})
    exec(compile(open(adapter).read(), adapter, "exec"), {"snakemake": snakemake, "__file__": adapter,
                                                          "__name__": "__main__"})
""")

BODY = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import torch
    from weightscape.execution import forkserver

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    torch.save(model.state_dict(), snakemake.output[0])
    mask = os.umask(0); os.umask(mask)
    Path = __import__("pathlib").Path
    facts = Path(snakemake.output[0] + ".json")
    facts.with_suffix(".tmp").write_text(json.dumps({
        "pid": os.getpid(), "ppid": os.getppid(), "forked": forkserver.FORKED, "cwd": os.getcwd(),
        "mark": os.environ.get("MARK"), "umask": mask, "numpy_draw": float(np.random.rand())}))
    os.replace(facts.with_suffix(".tmp"), facts)  # whole, for the test that waits for it to appear
    print("to stdout", flush=True)
    print("to stderr", file=sys.stderr)
    if os.environ.get("EXIT_CODE"):
        raise SystemExit(int(os.environ["EXIT_CODE"]))
    time.sleep(float(os.environ.get("SLEEP", "0")))
""")
ADAPTER = "from weightscape.execution import job\n\nwith job(snakemake, __file__):\n" + textwrap.indent(BODY, "    ")


@pytest.fixture
def job(tmp_path):
    """run(out, **env) -> CompletedProcess of one job; a private server folder (short: a socket path's limit)."""
    server_dir = Path(tempfile.mkdtemp(prefix="wsfs", dir="/tmp"))
    (tmp_path / "driver.py").write_text(DRIVER)
    (tmp_path / "adapter.py").write_text(ADAPTER)
    base = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "WEIGHTSCAPE_FORK_SERVER")}
    base.update(TMPDIR=str(server_dir), WEIGHTSCAPE_FORK_SERVER_IDLE="20")

    def command(out, threads=1):
        return [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "adapter.py"), str(tmp_path / out),
                str(threads)]

    def run(out, threads=1, **env):
        return subprocess.run(command(out, threads), cwd=tmp_path, env={**base, **env}, capture_output=True,
                              text=True, timeout=180)

    def start(out, **env):
        return subprocess.Popen(command(out), cwd=tmp_path, env={**base, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    run.start, run.dir, run.env, run.server_dir = start, tmp_path, base, server_dir
    yield run
    end_servers(server_dir)
    shutil.rmtree(server_dir, ignore_errors=True)


def end_servers(server_dir: Path) -> None:
    """End the servers this test started (now rather than after their idle time): the pids in their pid files
    under the test's own server folder, each checked to be that server's before it is signalled."""
    pids = []
    for pid_file in server_dir.rglob("*.pid"):
        pid = int(pid_file.read_text())
        try:
            if str(pid_file.with_suffix(".sock")).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
                pids.append(pid)
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def weights(job, out) -> dict[str, bytes]:
    import torch

    return {k: v.numpy().tobytes() for k, v in torch.load(job.dir / out).items()}


def facts(job, out):
    return json.loads((job.dir / f"{out}.json").read_text())


def test_a_forked_job_computes_the_same_bytes_with_its_own_cwd_env_umask_and_streams(job):
    alone = job("alone.pt", WEIGHTSCAPE_FORK_SERVER="0")
    first = job("first.pt", MARK="one")
    second = job("second.pt", MARK="two")
    for done in (alone, first, second):
        assert done.returncode == 0, done.stderr
        assert done.stdout == "to stdout\n" and done.stderr == "to stderr\n"
    assert not facts(job, "alone.pt")["forked"]
    one, two = facts(job, "first.pt"), facts(job, "second.pt")
    assert one["forked"] and two["forked"]
    assert one["ppid"] == two["ppid"] != os.getpid()  # both forks of one server
    assert (one["mark"], two["mark"]) == ("one", "two")
    assert one["cwd"] == str(job.dir) and one["umask"] == facts(job, "alone.pt")["umask"]
    assert one["numpy_draw"] != two["numpy_draw"]  # fresh global RNG states, as separate processes get
    assert weights(job, "first.pt") == weights(job, "alone.pt") == weights(job, "second.pt")


def test_exit_status_and_signals_reach_the_job(job):
    failed = job("failed.pt", EXIT_CODE="3")
    assert failed.returncode == 3 and facts(job, "failed.pt")["forked"]

    for signum, how in ((signal.SIGTERM, "forwarded"), (signal.SIGKILL, "job process gone")):
        process = job.start(f"{how}.pt", SLEEP="60")
        facts_file = job.dir / f"{how}.pt.json"
        deadline = time.monotonic() + 120
        while not facts_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        fork = json.loads(facts_file.read_text())["pid"]
        process.send_signal(signum)
        process.wait(timeout=30)
        if signum == signal.SIGTERM:
            assert process.returncode == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while Path(f"/proc/{fork}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{fork}").exists(), f"the fork outlived its job process ({how})"


def test_a_stopped_server_finishes_its_running_job_and_the_next_job_starts_a_new_one(job):
    running = job.start("running.pt", SLEEP="3")
    facts_file = job.dir / "running.pt.json"
    deadline = time.monotonic() + 120
    while not facts_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    server = facts(job, "running.pt")["ppid"]
    stop = "from weightscape.execution.forkserver import stop_server; print(stop_server(threads=1))"
    stopped = subprocess.run([sys.executable, "-c", stop], env=job.env, capture_output=True, text=True, timeout=120)
    assert stopped.stdout.strip() == "True", stopped.stderr
    assert running.wait(timeout=60) == 0  # finished, not killed
    assert not Path(f"/proc/{server}").exists() or "Z" in Path(f"/proc/{server}/stat").read_text().split()[2]
    after = job("after.pt")
    assert after.returncode == 0 and facts(job, "after.pt")["forked"]
    assert facts(job, "after.pt")["ppid"] != server
    again = subprocess.run([sys.executable, "-c", stop], env=job.env, capture_output=True, text=True, timeout=120)
    assert again.stdout.strip() == "True"  # the new server, found through its own pid file
    assert subprocess.run([sys.executable, "-c", stop], env=job.env, capture_output=True, text=True,
                          timeout=120).stdout.strip() == "False"  # none left


def test_off_under_slurm_and_when_switched_off(job):
    for env in ({"SLURM_JOB_ID": "7"}, {"WEIGHTSCAPE_FORK_SERVER": "0"}):
        done = job("here.pt", **env)
        assert done.returncode == 0 and not facts(job, "here.pt")["forked"]


def test_a_run_that_sends_its_jobs_to_a_cluster_switches_the_server_off_for_its_local_jobs(monkeypatch):
    """The workflow's onstart hands Snakemake's executor plugin to off_when_jobs_go_to_a_cluster: with the SLURM
    plugin the jobs run on this machine (the localrules, on a login node) go without a server; with the local
    executor nothing changes. tests/test_slurm.py checks the same through a whole SLURM run."""
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    from weightscape.execution import forkserver

    monkeypatch.setenv("WEIGHTSCAPE_FORK_SERVER", "1")  # restored after the test
    registry = ExecutorPluginRegistry()
    forkserver.off_when_jobs_go_to_a_cluster(registry.get_plugin("local"))
    assert os.environ["WEIGHTSCAPE_FORK_SERVER"] == "1"
    forkserver.off_when_jobs_go_to_a_cluster(registry.get_plugin("slurm"))
    assert os.environ["WEIGHTSCAPE_FORK_SERVER"] == "0" and not forkserver.enabled()


def test_a_server_that_cannot_start_leaves_the_job_to_run_on_its_own(job):
    done = job("fallback.pt", WEIGHTSCAPE_FORK_SERVER_IDLE="not a number")
    assert done.returncode == 0
    assert not facts(job, "fallback.pt")["forked"]
    assert "fork server unavailable" in done.stderr and "running the job in its own process" in done.stderr


def test_each_thread_count_gets_its_own_private_server(job):
    one, two = job("one.pt", threads=1), job("two.pt", threads=2)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr, two.stderr)
    assert facts(job, "one.pt")["forked"] and facts(job, "two.pt")["forked"]
    assert facts(job, "one.pt")["ppid"] != facts(job, "two.pt")["ppid"]  # its torch threads are set at its import
    # one private folder for both servers (torch may put its own cache folder, torchinductor_<user>, beside it)
    [folder] = job.server_dir.glob("weightscape-*")  # whoever can connect runs code as the user
    assert folder.stat().st_mode & 0o777 == 0o700 and len(list(folder.glob("*.pid"))) == 2


HELD_SIGNAL = textwrap.dedent("""
    import os, signal, socket, subprocess, sys, threading
    from weightscape.execution import forkserver

    job_side, server_side = socket.socketpair()

    def server():  # takes the request, then the job is told to stop before it learns the fork's pid
        head, fds, _, _ = socket.recv_fds(server_side, forkserver.HEADER.size, 3)
        forkserver.receive_exactly(server_side, forkserver.HEADER.unpack(head)[0])  # the request
        forkserver.receive(server_side)  # the snakemake object
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(0.5)
        fork = subprocess.Popen(["sleep", "60"])
        server_side.sendall(forkserver.frame(str(fork.pid).encode()))
        _, status = os.waitpid(fork.pid, 0)
        server_side.sendall(forkserver.frame(str(status).encode()))

    threading.Thread(target=server, daemon=True).start()
    sys.exit(forkserver.run_remote(job_side, {}, b""))
""")


def test_a_signal_before_the_forks_pid_is_known_is_held_and_forwarded():
    done = subprocess.run([sys.executable, "-c", HELD_SIGNAL], capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
