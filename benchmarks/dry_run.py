"""Dry-run cost of a large grid: `snakemake -n` on configs/paper.yaml against a bare Snakefile with as many jobs.

The workflow's parse (config validation, settings, the grid) and its input functions cost time on every
snakemake call, the cluster's job submissions included; the bare workflow (one trivial rule per job, no config)
is snakemake's own floor for a DAG of that size. Runs alternate (bare, weightscape, ...) and the medians are
compared:

    python benchmarks/dry_run.py [--config configs/paper.yaml] [--repeats 3]
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

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def dry_run(workdir: Path, *args: str) -> tuple[float, int]:
    """(seconds, jobs) of `snakemake -n --quiet rules` in `workdir`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PATH=f"{Path(SNAKEMAKE).parent}:{os.environ['PATH']}")
    started = time.perf_counter()
    result = subprocess.run([SNAKEMAKE, "-n", "--quiet", "rules", "--directory", str(workdir), *args],
                            capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"dry_run: snakemake failed:\n{result.stderr[-2000:]}")
    total = next(line for line in (result.stdout + result.stderr).splitlines() if line.split()[:1] == ["total"])
    return seconds, int(total.split()[1])


def bare_snakefile(folder: Path, jobs: int) -> Path:
    """A workflow of `jobs` independent one-line jobs plus a target rule."""
    path = folder / "Snakefile"
    path.write_text(f"rule all:\n    input: expand('out/{{i}}.txt', i=range({jobs - 1}))\n\n"
                    "rule one:\n    output: 'out/{i}.txt'\n    shell: 'touch {output}'\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "paper.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "ours").mkdir()
        (scratch / "bare").mkdir()
        ours = ("--snakefile", str(REPO / "Snakefile"), "--configfile", str(args.config))
        _, jobs = dry_run(scratch / "ours", *ours)  # warm-up (imports into the page cache) and the job count
        bare = ("--snakefile", str(bare_snakefile(scratch / "bare", jobs)))
        seconds = {"bare": [], "weightscape": []}
        for _ in range(args.repeats):
            seconds["bare"].append(dry_run(scratch / "bare", *bare)[0])
            seconds["weightscape"].append(dry_run(scratch / "ours", *ours)[0])
    print(f"dry run of {jobs} jobs ({args.config.name}), {args.repeats} alternating repeats (median)")
    for name, values in seconds.items():
        print(f"{name:<12}{statistics.median(values):>8.2f} s   runs: " + ", ".join(f"{v:.2f}" for v in values))
    ratio = statistics.median(seconds["weightscape"]) / statistics.median(seconds["bare"])
    print(f"ratio weightscape / bare snakemake = {ratio:.2f}")


if __name__ == "__main__":
    main()
