"""Idle fine-tune jobs against their floor: a finished run's fine-tune jobs rerun one at a time on an idle machine,
exactly as the pipeline runs them, each right after the floor of the same work is measured.

    python benchmarks/idle_finetune.py [WORKDIR] [--jobs KEY ...] [--repeats 2] [--floor-repeats 3]
                                       [--images N] [--threads 1] [--json PATH]

KEY is a fine-tune job, DATASET/MODEL/CONDITION/seedN (default: seed 0 of the baseline, of the first dropout and
weight-decay level, and of every augmented and mixed condition of the run). Per repeat and job, in turn:

floor     grid_profile.measure_floor: the bare loop (channels_last, Adam; inference_mode), one process, no I/O, on
          --images training images (default: the job's training-set size, so that its batches are the job's),
          median of --floor-repeats; job floor = train images / train rate + eval images / inference rate, with
          grid_profile's image counts. Augmentation is not part of it (its images are prepared once). Measured
          right before and right after the job (the measurement after one job is the one before the next, when
          their image counts match) and averaged: on a machine whose speed drifts (a shared VM: the same idle job
          measured 1.11x and 1.28x of a floor taken just before it, within twenty minutes), the two bracket the
          job's own conditions, and their spread (drift) says how far one figure can be trusted.
augment   for an augmented condition, the floor of its augmentation (a bare loop: the condition's v2 pipeline on
          each training image of every epoch, each batch made model-ready), which the floor above leaves out;
          wall / (floor + augment) is the job against the bare cost of all of its work.
job       `snakemake --force TARGET --cores 1` in WORKDIR with the run's config files (from its Snakemake log) and
          this checkout's Snakefile and code: the rule, its adapter, the local fork server and
          weightscape.runs.finetune_run, as in the run. Wall = column s of the job's benchmark table, as
          grid_profile reads it; phases from the job's log. One untimed job first starts the fork server, as the
          first job of a run does.

Each job's outputs, log and benchmark table are set aside first and put back at the end with their file times, so
the run stays complete and nothing downstream reruns; the rerun's outputs are compared with the run's byte for byte
(a same-machine reproducibility check). Figures are medians over --repeats; "paired" is the median of each repeat's
own wall / (floor + augment), which drift between repeats moves least. Goals: wall / floor <= 1.1 (wall / (floor +
augment) for an augmented job: its augmentation draws are work the experiment asks for) and outside compute (wall -
train - evaluate) <= 5 s.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


from _common import augmentation_seconds, run_settings
from grid_profile import (batch_size_of_run, benchmark_seconds, config_files_of_run, finetune_jobs, job_floor_seconds,
                          measure_floor, phase_seconds, snakemake_logs)

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("weights.safetensors", "curve.csv", "metrics.json")


def output_files(results: Path, key: str) -> list[Path]:
    return [results / "runs" / key / name for name in OUTPUTS]


def log_file(results: Path, key: str) -> Path:
    return results / "logs" / "finetune" / f"{key}.log"


def benchmark_file(results: Path, key: str) -> Path:
    return results / "benchmarks" / "finetune" / f"{key}.tsv"


def job_files(results: Path, key: str) -> list[Path]:
    """Everything a rerun of fine-tune job `key` rewrites: its outputs, log and benchmark table."""
    return [*output_files(results, key), log_file(results, key), benchmark_file(results, key)]


def default_jobs(results: Path, settings) -> list[str]:
    """Seed 0 of the baseline, of the first dropout and weight-decay level, and of every diversity and mix."""
    keys, families = [], set()
    for path in sorted((results / "runs").glob("*/*/*/seed0/metrics.json")):
        condition = settings.conditions[path.parent.parent.name]
        if condition.family in ("dropout", "weight_decay") and condition.family in families:
            continue
        families.add(condition.family)
        keys.append(str(path.parent.relative_to(results / "runs")))
    return keys


def run_job(workdir: Path, key: str, config_files: list[Path]) -> None:
    """The fine-tune job `key`, forced, through Snakemake as the run ran it."""
    target = f"results/runs/{key}/metrics.json"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", HF_HUB_OFFLINE="1")
    command = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "1", "--force", target]
    command += [item for path in config_files for item in ("--configfile", str(path))]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"error: the fine-tune job {key} failed: {result.stderr.strip().splitlines()[-1:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", type=Path, default=Path("."))
    parser.add_argument("--jobs", nargs="+", default=None, metavar="KEY")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--floor-repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=None, help="floor training images (default: the job's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    results = workdir / "results"
    logs = snakemake_logs(workdir)
    log = max(logs, key=lambda entry: len(entry["jobs"]), default=None)
    config_files = [path.resolve() for path in config_files_of_run(log, workdir)]
    settings = run_settings(workdir, config_files)
    keys = args.jobs or default_jobs(results, settings)
    missing = [key for key in keys if not all(path.is_file() for path in job_files(results, key))]
    if missing:
        raise SystemExit(f"error: no finished fine-tune job {missing[0]} in {results} (KEY is "
                         f"DATASET/MODEL/CONDITION/seedN of a finished run)")
    batch, _ = batch_size_of_run(argparse.Namespace(batch_size=None), log, workdir)

    from weightscape.runtime import pin_threads

    pin_threads(args.threads)
    info = {row["job"]: row for row in finetune_jobs(results, dict.fromkeys(keys, 0.0))}  # image counts; no walls
    saved = Path(tempfile.mkdtemp(prefix="idle_finetune-"))
    rows = {key: {"wall_s": [], "phases": [], "floor_s": [], "floor_around_s": [], "augment_s": [], "identical": []}
            for key in keys}
    try:
        for i, key in enumerate(keys):  # set the run's files aside, times kept
            for path in job_files(results, key):
                shutil.copy2(path, saved / f"{i}-{path.name}")
        print(f"warm-up: {keys[0]} (starts the fork server; not timed)", flush=True)
        run_job(workdir, keys[0], config_files)
        last = None  # (what was measured, its rates): the floor measured after the job before

        def floor_rates(what: tuple[int, int, int]) -> dict:  # (image size, eval batch, training images)
            nonlocal last
            last = (what, measure_floor(what[0], batch, what[1], what[2], args.floor_repeats))
            return last[1]

        for repeat in range(args.repeats):
            for i, key in enumerate(keys):
                job = info[key]
                what = (job["image_size"], job["eval_batch_size"], args.images or job["n_train"])
                before = last[1] if last is not None and last[0] == what else floor_rates(what)
                augment = augmentation_seconds(results, key, settings.conditions[key.split("/")[2]].transforms,
                                               job["n_train"], settings.train.epochs, settings.train.batch_size)
                if augment is not None:
                    rows[key]["augment_s"].append(augment)
                run_job(workdir, key, config_files)
                after = floor_rates(what)
                bracket = [job_floor_seconds(job, before), job_floor_seconds(job, after)]
                rows[key]["floor_around_s"].append(bracket)
                rows[key]["floor_s"].append(statistics.mean(bracket))
                rows[key]["wall_s"].append(benchmark_seconds(benchmark_file(results, key)))
                rows[key]["phases"].append(phase_seconds(log_file(results, key)) or {})
                rows[key]["identical"].append(all(filecmp.cmp(path, saved / f"{i}-{path.name}", shallow=False)
                                                  for path in output_files(results, key)))
                r = rows[key]
                print(f"repeat {repeat + 1}/{args.repeats} {key}: wall {r['wall_s'][-1]:.2f} s, floor "
                      f"{r['floor_s'][-1]:.2f} s (before {bracket[0]:.2f}, after {bracket[1]:.2f})" +
                      (f", augment {augment:.2f} s" if augment is not None else ""), flush=True)
    finally:
        for i, key in enumerate(keys):
            for path in job_files(results, key):
                if (saved / f"{i}-{path.name}").is_file():
                    shutil.copy2(saved / f"{i}-{path.name}", path)
        shutil.rmtree(saved, ignore_errors=True)
    report(rows, args)


def report(rows: dict, args) -> None:
    median = statistics.median
    print(f"\nidle fine-tune jobs, one at a time, {args.threads} thread(s); medians of {args.repeats} repeat(s)")
    width = max(len(key) for key in rows) + 2
    header = (f"{'job':<{width}}{'wall s':>8}{'floor s':>9}{'wall/floor':>11}{'train':>8}{'eval':>7}{'outside':>9}"
              f"{'augment':>9}{'w/(f+a)':>9}{'drift':>7}  {'identical':<12}paired w/(f+a) (range)")
    print(header)
    out = {}
    for key, r in rows.items():
        phases = {name: median([p.get(name, 0.0) for p in r["phases"]]) for name in ("train", "evaluate")}
        wall, floor = median(r["wall_s"]), median(r["floor_s"])
        augment = median(r["augment_s"]) if r["augment_s"] else None
        outside = median([w - p.get("train", 0.0) - p.get("evaluate", 0.0) for w, p in zip(r["wall_s"], r["phases"])])
        drift = max(abs(after / before - 1) for before, after in r["floor_around_s"])
        # each repeat's job against its own bracket: pairs cancel the drift between repeats that medians keep
        augments = r["augment_s"] or [0.0] * len(r["wall_s"])
        paired = [w / (f + a) for w, f, a in zip(r["wall_s"], r["floor_s"], augments)]
        out[key] = {**r, "wall": wall, "floor": floor, "ratio": wall / floor, "outside": outside, "augment": augment,
                    "ratio_with_augment": wall / (floor + (augment or 0.0)), "drift": drift,
                    "paired_ratios": paired, "paired_ratio": median(paired)}
        print(f"{key:<{width}}{wall:>8.2f}{floor:>9.2f}{wall / floor:>11.3f}{phases['train']:>8.2f}"
              f"{phases['evaluate']:>7.2f}{outside:>9.2f}" +
              (f"{augment:>9.2f}{out[key]['ratio_with_augment']:>9.3f}" if augment is not None else f"{'-':>9}{'-':>9}")
              + f"{drift:>7.1%}  {str(all(r['identical'])):<12}"
              f"{out[key]['paired_ratio']:.3f} ({min(paired):.3f}-{max(paired):.3f})")
    walls, floors = sum(o["wall"] for o in out.values()), sum(o["floor"] for o in out.values())
    print(f"{'all':<{width}}{walls:>8.2f}{floors:>9.2f}{walls / floors:>11.3f}   worst wall/floor "
          f"{max(o['ratio'] for o in out.values()):.3f}, worst outside {max(o['outside'] for o in out.values()):.2f} s"
          f"   (goals <= 1.1, <= 5 s)")
    print("floor: the mean of the floors measured right before and after each job; drift: the largest change between "
          "the two (machine speed moving under the job); paired: each repeat's wall / (its own floor + augmentation), "
          "the figure least moved by drift between repeats")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
