"""Snakemake's own CPU time while it runs jobs, as it is and with weightscape.scheduler_wakeups (which
rules/common.smk applies), on a bare Snakefile of sleeping jobs, side by side.

    python benchmarks/scheduler.py [--jobs 120] [--seconds 3] [--inputs 30] [--cores 2] [--repeats 1]

Why: with its job-rate limit (default 100/1s), every pass of Snakemake's scheduler arms a timer of one timespan,
whose pass arms the next, so each job start or finish adds a chain of passes that lasts until the run ends
(snakemake 9.27). In the default three-seed run the main process had ~165 chains by the end and spent 148 CPU-s,
taken from the jobs on the same cores. The jobs here only sleep, so the CPU time of the snakemake process (its own,
children excluded; sampled from /proc every 0.2 s) is the scheduler's, and its thread count shows the timers. Each
variant runs in a fresh temporary folder; the variants alternate per repeat. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIX = "from weightscape.scheduler_wakeups import one_pending_wakeup\n\none_pending_wakeup()\n\n"
# Like the fine-tunes, every job reads many shared inputs (the data, its OOD sets), and the scheduler looks at the
# inputs of every ready job on each pass.
SNAKEFILE = """\
rule all:
    input: expand("done/{{i}}.txt", i=range({jobs}))

rule inputs:
    output: expand("inputs/{{k}}.txt", k=range({inputs}))
    shell: "touch {{output}}"

rule sleep:
    input: rules.inputs.output
    output: "done/{{i}}.txt"
    shell: "sleep {seconds} && touch {{output}}"
"""


def own_cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (not its children), from /proc; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(fixed: bool, jobs: int, seconds: float, inputs: int, cores: int) -> dict:
    """One snakemake run of the sleeping grid, with the fix or without: wall, own CPU, peak threads."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "Snakefile").write_text(FIX * fixed + SNAKEFILE.format(jobs=jobs, seconds=seconds, inputs=inputs))
        command = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet", "all"]
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cpu, threads = 0.0, 0
        while process.poll() is None:
            cpu = own_cpu_seconds(process.pid) or cpu
            try:
                threads = max(threads, len(os.listdir(f"/proc/{process.pid}/task")))
            except OSError:  # it has just exited
                pass
            time.sleep(0.2)
        wall = time.perf_counter() - start
        if process.returncode != 0:
            sys.exit(f"error: snakemake failed ({'with' if fixed else 'without'} the fix): "
                     f"{process.stderr.read().strip().splitlines()[-1:]}")
        finished = len(list(Path(folder, "done").iterdir()))
    return {"wall_s": wall, "cpu_s": cpu, "threads": threads, "finished": finished}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=3.0, help="each job sleeps this long")
    parser.add_argument("--inputs", type=int, default=30, help="input files of each job")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    variants = {"snakemake as is": False, "one pending wake-up": True}
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fixed in variants.items():
            runs[name].append(run_once(fixed, args.jobs, args.seconds, args.inputs, args.cores))
    print(f"{args.jobs} jobs sleeping {args.seconds:g} s, {args.inputs} inputs each, on {args.cores} cores, "
          f"{args.repeats} repeat(s) (median)")
    print(f"{'variant':<22}{'wall s':>9}{'snakemake CPU s':>17}{'peak threads':>14}")
    median = {name: {key: statistics.median(r[key] for r in rows) for key in ("wall_s", "cpu_s", "threads")}
              for name, rows in runs.items()}
    for name, m in median.items():
        print(f"{name:<22}{m['wall_s']:>9.1f}{m['cpu_s']:>17.2f}{m['threads']:>14.0f}")
    before, after = (median[name]["cpu_s"] for name in variants)
    print(f"snakemake CPU, one pending wake-up / as is: {after / before:.2f}")
    if any(r["finished"] != args.jobs for rows in runs.values() for r in rows):
        sys.exit("error: a run finished fewer jobs than it had")


if __name__ == "__main__":
    main()
