"""Job start-up with and without the local fork server (weightscape.forkserver), side by side on a finished run:
the same spectra jobs (whose own computation is ~1 s, so their wall time is mostly start-up) rerun by Snakemake one
at a time with WEIGHTSCAPE_FORK_SERVER=0 and =1, alternating; per-job wall seconds from their benchmark tables;
and whether both modes write the same bytes.

Run after `make run` (or on any WORKDIR whose results/runs/ holds spectra outputs):
    python benchmarks/fork_server.py [WORKDIR] [--jobs 4] [--repeats 3]

In the fork-server mode the first job of each repeat finds a server the previous repeat left running (as every job
of a run but the first does); the cost of starting one, paid once per run, is printed separately (a repeat after
the server was stopped).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

RULE = "spectra_run"


def run_jobs(workdir: Path, targets: list[str], server: bool) -> list[float]:
    """Rerun the spectra jobs of `targets` one at a time; their wall seconds from the benchmark tables."""
    env = {**os.environ, "WEIGHTSCAPE_FORK_SERVER": "1" if server else "0"}
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet", "all", "--forcerun", RULE,
                    "--allowed-rules", RULE, "--", *targets], cwd=workdir, env=env, check=True)
    return [float(pd.read_csv(benchmark_table(workdir, t), sep="\t")["s"].iloc[-1]) for t in targets]


def benchmark_table(workdir: Path, target: str) -> Path:
    # results/runs/{dataset}/{model}/{condition}/seed{seed}/spectra/layers.parquet -> its rule's benchmark table
    dataset, model, condition, seed = Path(target).parts[2:6]
    return workdir / "results" / "benchmarks" / RULE / dataset / model / condition / f"{seed}.tsv"


def digest(workdir: Path, targets: list[str]) -> str:
    sha = hashlib.sha256()
    for target in targets:
        for name in ("layers.csv", "eigenvalues.npz"):  # parquet files carry no time stamps either, but csv suffices
            sha.update((workdir / Path(target).parent / name).read_bytes())
    return sha.hexdigest()


def stop_servers() -> None:
    """End this code's one-thread server (a spectra job's), after any job it runs; other servers are left alone."""
    from weightscape.forkserver import stop_server

    stop_server(threads=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", default=".")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    targets = sorted(str(p.relative_to(workdir)) for p in (workdir / "results" / "runs").glob(
        "*/*/*/seed*/spectra/layers.parquet"))[:args.jobs]
    if not targets:
        raise SystemExit(f"{workdir}/results/runs: no spectra outputs; run the pipeline first")
    print(f"{len(targets)} {RULE} jobs in {workdir}, one at a time, {args.repeats} alternating repeats")
    stop_servers()
    cold = run_jobs(workdir, targets, server=True)  # starts the server: paid once per run
    walls: dict[str, list[float]] = {"own process": [], "fork server": []}
    digests = {}
    for _ in range(args.repeats):
        for mode in walls:
            walls[mode] += run_jobs(workdir, targets, server=mode == "fork server")
            digests.setdefault(mode, set()).add(digest(workdir, targets))
    stop_servers()
    own, forked = statistics.median(walls["own process"]), statistics.median(walls["fork server"])
    print(f"{'mode':<14}{'median s/job':>14}{'jobs':>6}")
    for mode, values in walls.items():
        print(f"{mode:<14}{statistics.median(values):>14.2f}{len(values):>6}")
    print(f"own process / fork server: {own / forked:.2f}x; saved per job: {own - forked:.2f} s")
    print(f"starting the server (first job of a run): {cold[0] - statistics.median(cold[1:] or cold):.2f} s "
          f"(first job {cold[0]:.2f} s)")
    same = len(set.union(*digests.values())) == 1
    print(f"outputs identical in both modes: {same}")


if __name__ == "__main__":
    main()
