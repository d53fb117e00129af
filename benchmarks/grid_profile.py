"""Where a finished run's time went, and how its fine-tunes compare with the floor of their work.

    python benchmarks/grid_profile.py [WORKDIR] [--configfile F ...] [--cores 2] [--repeats 3] [--images N]
                                      [--no-floor] [--json PATH]
    python benchmarks/grid_profile.py [WORKDIR] [--configfile F ...] --idle [KEY ...] [--repeats 2]
                                      [--floor-repeats 3] [--images N] [--json PATH]
    python benchmarks/grid_profile.py --configfile F --project RATES [--gpus 1] [--jobs-per-gpu K] [--json PATH]

WORKDIR holds the run's results/ and .snakemake/log/; --configfile: the run's own (over WORKDIR/config.yaml).
rules   per rule: jobs, total and mean wall (column s of its benchmark tables), share.
phases  the fine-tunes' `phase seconds:` log lines (weightscape.runs.PhaseClock), `outside` = wall - their sum.
floor   a bare torch loop (_common.bare_loop, channels_last; inference under inference_mode) on EfficientNet-Lite0
        and real Fashion-MNIST images at the run's image size, batch sizes and threads, on --images training images
        (default: the run's most common training-set size): median images/s of --repeats. A job's floor = its
        training images / training rate + its evaluation images / inference rate, the images counted from the
        config as the projection counts them; the bare cost of its augmentation (_common.augmentation_seconds) is
        shown beside it, not in it.
run     the main invocation's wall (the Snakemake log that finished the most jobs) against the run floor =
        max(work / cores, longest job), work = every fine-tune at its floor + every other job at its wall.
--idle  fine-tune jobs (KEY = MODEL/DATASET/CONDITION/seedN; default: seed 0 of the baseline, the first dropout
        and weight-decay level and every other condition) rerun one at a time by Snakemake (--force, one core,
        this checkout, fork server included; an untimed first job starts it), each between two measurements of
        its floor (floor = their mean, drift = their spread). Per job: wall / floor, wall / (floor +
        augmentation) paired per repeat (least moved by drift), time outside training and evaluation, and
        whether its outputs equal the run's bytes. The run's files are put back with their times.
--project  no run needed: the config's fine-tunes on --gpus GPUs at K jobs per GPU (default: its train.jobs_per_gpu)
        at the per-job rates of RATES (train_loop.py --rates writes them), weightscape.execution.projection.
"""

from __future__ import annotations

import argparse
import copy
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from statistics import mean, median

import pandas as pd

from _common import REPO, alternating, augmentation_seconds, bare_loop, default_model_and_data, run_settings, shuffled
from weightscape import layout

PHASES = ("startup", "load", "train", "evaluate", "write")
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", re.M)
RUN_FILES = ("weights.safetensors", "curve.csv", "metrics.json")


def benchmark_seconds(path: Path) -> float:
    """Wall seconds of one benchmark table: column s, repeated rows averaged."""
    return float(pd.read_csv(path, sep="\t")["s"].mean())


def job_walls(workdir: Path) -> dict[str, dict[str, float]]:
    """rule -> {job (its path below the rule's benchmark folder): wall seconds}."""
    walls, root = defaultdict(dict), workdir / layout.BENCHMARKS
    for path in sorted(root.rglob("*.tsv")):
        rule, *item = path.relative_to(root).with_suffix("").parts
        walls[rule]["/".join(item)] = benchmark_seconds(path)
    return dict(walls)


def main_invocation(workdir: Path) -> dict | None:
    """The Snakemake log that finished the most jobs (ties: the latest): its start and end."""
    best = None
    for path in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log")):
        text = path.read_text()
        finished, stamps = len(re.findall(r"^Finished jobid: ", text, re.M)), STAMP.findall(text)
        if not finished or (best and finished < best["jobs"]):
            continue
        try:
            start = datetime.strptime(path.name.split(".snakemake")[0], "%Y-%m-%dT%H%M%S.%f")
        except ValueError:
            start = datetime.strptime(stamps[0], "%a %b %d %H:%M:%S %Y")
        best = {"path": str(path), "jobs": finished, "start": start,
                "end": datetime.strptime(stamps[-1], "%a %b %d %H:%M:%S %Y")}
    return best


def phase_seconds(log_path: Path) -> dict[str, float] | None:
    """The last `phase seconds:` line of a job log as {phase: seconds}; None without one."""
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if "phase seconds:" in line] \
        if log_path.is_file() else []
    if not lines:
        return None
    pairs = (item.rsplit(None, 1) for item in lines[-1].split("phase seconds:", 1)[1].split(","))
    return {name.strip(): float(value) for name, value in pairs}


def finetune_jobs(workdir: Path, settings, walls: dict[str, float]) -> list[dict]:
    """One row per fine-tune job in `walls`: its wall and phases, and its work (training and evaluation images) as
    weightscape.execution.projection.finetune_work counts it from the config."""
    from weightscape.execution.projection import finetune_work

    epochs, rows = settings.train.epochs, []
    for work in finetune_work(settings):
        key = layout.RUN.format(**work)
        if key in walls:
            rows.append({**work, "job": key, "wall_s": walls[key], "n_train": work["train_images"] // epochs,
                         "epochs": epochs, "phases": phase_seconds(workdir / layout.log("finetune", key)),
                         "image_size": settings.models[work["model"]].image_size,
                         "eval_batch_size": settings.execution.eval_batch_size})
    return rows


def measure_floor(image_size: int, batch_size: int, eval_batch: int, images: int, repeats: int) -> dict:
    """Median images/s of the bare training loop and a bare inference loop, alternating, after one warm-up each."""
    import torch

    from weightscape.inputs import to_model_inputs

    built, raw, labels, spec = default_model_and_data(images, image_size)
    inputs = to_model_inputs(raw, spec).contiguous(memory_format=torch.channels_last)
    labels, model = torch.as_tensor(labels), built.module.to(memory_format=torch.channels_last)

    def infer(_copy) -> None:
        model.eval()
        with torch.inference_mode():
            for chunk in inputs.split(eval_batch):
                model(chunk)

    runners = {"train": lambda fresh: bare_loop(fresh, shuffled(inputs, labels, 1, batch_size), lr=1e-3),
               "inference": infer}
    alternating(runners, 1, fresh=lambda: copy.deepcopy(model))  # warm-up (allocator, kernels) outside the timing
    seconds, _ = alternating(runners, repeats, fresh=lambda: copy.deepcopy(model))
    runs = {name: [len(inputs) / s for s in values] for name, values in seconds.items()}
    return {"image_size": image_size, "batch_size": batch_size, "eval_batch_size": eval_batch, "images": images,
            "runs": runs, **{f"{name}_images_per_s": median(values) for name, values in runs.items()}}


def job_floor(job: dict, rates: dict) -> float:
    return job["train_images"] / rates["train_images_per_s"] + job["eval_images"] / rates["inference_images_per_s"]


def profile(args, workdir: Path, settings) -> dict:
    walls, log = job_walls(workdir), main_invocation(workdir)
    summed = sum(s for jobs in walls.values() for s in jobs.values())
    rules = {rule: {"jobs": len(jobs), "total_s": sum(jobs.values()), "mean_s": sum(jobs.values()) / len(jobs),
                    "share": sum(jobs.values()) / summed}
             for rule, jobs in sorted(walls.items(), key=lambda item: -sum(item[1].values()))}
    print(f"rules of {workdir} (column s of {layout.BENCHMARKS})\n{'rule':<22}{'jobs':>5}{'total s':>10}"
          f"{'mean s':>9}{'share':>8}")
    for rule, row in rules.items():
        print(f"{rule:<22}{row['jobs']:>5}{row['total_s']:>10.2f}{row['mean_s']:>9.2f}{row['share']:>8.1%}")

    jobs = finetune_jobs(workdir, settings, walls.get("finetune", {}))
    phased, wall = [job for job in jobs if job["phases"]], sum(job["wall_s"] for job in jobs)
    totals = {name: sum(job["phases"].get(name, 0.0) for job in phased) for name in PHASES}
    totals["outside"] = sum(job["wall_s"] - sum(job["phases"].values()) for job in phased)
    print(f"\nfine-tune phases, {len(phased)} jobs with a phase line of {len(jobs)}\n{'phase':<22}{'total s':>10}"
          f"{'share':>8}")
    for name, seconds in totals.items():
        print(f"{name:<22}{seconds:>10.2f}{seconds / max(wall, 1e-9):>8.1%}")

    floors, batch, augments = {}, settings.train.batch_size, {}
    if jobs and not args.no_floor:
        from weightscape.runtime import pin_threads

        pin_threads(settings.execution.threads)
        images = args.images or max(sorted({j["n_train"] for j in jobs}), key=[j["n_train"] for j in jobs].count)
        for size, eval_batch in sorted({(job["image_size"], job["eval_batch_size"]) for job in jobs}):
            m = floors[size, eval_batch] = measure_floor(size, batch, eval_batch, images, args.repeats)
            print(f"\nfloor @ {size} px, train batch {batch}, eval batch {eval_batch}, {images} images, "
                  f"{settings.execution.threads} thread(s): train {m['train_images_per_s']:.1f}, inference "
                  f"{m['inference_images_per_s']:.1f} images/s (median of {args.repeats})")
    for job in jobs:
        rates, cell = floors.get((job["image_size"], job["eval_batch_size"])), job["job"].rsplit("/", 1)[0]
        job["floor_s"] = rates and job_floor(job, rates)
        if floors and cell not in augments:  # a cell's seeds do the same work
            augments[cell] = augmentation_seconds(workdir, job["job"], settings.conditions[job["condition"]].transforms,
                                                  job["n_train"], job["epochs"], batch)
        job["augment_s"] = augments.get(cell)
    floor = sum(job["floor_s"] for job in jobs) if floors else None
    augment = sum(job["augment_s"] or 0.0 for job in jobs) if augments else None
    if floor:
        print(f"{len(jobs)} fine-tunes: wall {wall:.2f} s, floor {floor:.2f} s, wall / floor {wall / floor:.2f}" +
              (f"; bare augmentation {augment:.2f} s, wall / (floor + augmentation) {wall / (floor + augment):.2f}"
               if augment is not None else ""))

    run_wall = log and (log["end"] - log["start"]).total_seconds()
    others = [s for rule, js in walls.items() if rule != "finetune" for s in js.values()]
    run_floor = floor and max((floor + sum(others)) / args.cores, *(job["floor_s"] for job in jobs), *others)
    run_floor_augment = augment is not None and max(
        (floor + augment + sum(others)) / args.cores, *others, *(j["floor_s"] + (j["augment_s"] or 0) for j in jobs))
    run = {"wall_s": run_wall, "log": log and log["path"], "cores": args.cores, "run_floor_s": run_floor,
           "ratio": run_floor and run_wall and run_wall / run_floor, "idle_core_s": run_wall and
           run_wall * args.cores - summed, "run_floor_with_augment_s": run_floor_augment or None,
           "ratio_with_augment": run_floor_augment and run_wall and run_wall / run_floor_augment or None}
    if run_wall:
        print(f"\nrun wall {run_wall:.1f} s ({Path(log['path']).name}, {log['jobs']} jobs), {args.cores} cores; idle "
              f"core-s {run['idle_core_s']:.1f}" + (f"; run floor {run_floor:.1f} s, wall / it {run['ratio']:.2f}"
                                                   if run_floor else ""))
    return {"workdir": str(workdir), "rules": rules, "finetune_jobs": jobs, "run": run,
            "phases": {"jobs": len(phased), "no_phase_line": [j["job"] for j in jobs if not j["phases"]],
                       "total_s": totals},
            "floor": {"measurements": list(floors.values()), "batch_size": batch, "jobs": len(jobs),
                      "train_images": sum(j["train_images"] for j in jobs),
                      "eval_images": sum(j["eval_images"] for j in jobs), "wall_s": wall, "floor_s": floor,
                      "ratio": floor and wall / floor, "augment_s": augment,
                      "floor_with_augment_s": augment is not None and floor + augment or None}}


def rerun(workdir: Path, key: str, configs: list[Path]) -> None:
    """The fine-tune job `key`, forced, through Snakemake as the run ran it."""
    target = f"{layout.RUNS.format(**layout.fields(layout.RUN, key))}/metrics.json"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", HF_HUB_OFFLINE="1")
    command = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "1", "--force", target]
    command += [item for path in configs for item in ("--configfile", str(path.resolve()))]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"error: the fine-tune job {key} failed: {result.stderr.strip().splitlines()[-1:]}")


def idle(args, workdir: Path, settings) -> dict:
    def job_files(key):
        run = workdir / layout.RUNS.format(**layout.fields(layout.RUN, key))
        return [*(run / name for name in RUN_FILES), workdir / layout.log("finetune", key),
                workdir / layout.benchmark("finetune", key)]

    first = {}  # default: seed 0 of the first dropout and weight-decay level and of every other condition
    keys = args.idle or [layout.RUN.format(model=m, dataset=d, condition=name, seed=0)
                         for name, c in settings.conditions.items()
                         if first.setdefault(c.family, name) == name or c.family not in ("dropout", "weight_decay")
                         for d in settings.datasets for m in settings.models]
    missing = [key for key in keys if not layout.fields(layout.RUN, key) or not all(map(Path.is_file, job_files(key)))]
    if missing:
        raise SystemExit(f"error: no finished fine-tune job {missing[0]} in {workdir / layout.RESULTS} (KEY is "
                         f"MODEL/DATASET/CONDITION/seedN of a finished run)")
    from weightscape.runtime import pin_threads

    pin_threads(settings.execution.threads)
    info = {row["job"]: row for row in finetune_jobs(workdir, settings, dict.fromkeys(keys, 0.0))}
    saved, rows, last = Path(tempfile.mkdtemp(prefix="grid_profile-")), {key: defaultdict(list) for key in keys}, None
    copies = {path: saved / f"{i}-{path.name}" for i, key in enumerate(keys) for path in job_files(key)}
    try:
        for path, kept in copies.items():  # the run's files aside, times kept
            shutil.copy2(path, kept)
        rerun(workdir, keys[0], args.configfile)  # untimed: starts the fork server, as the first job of a run does
        for repeat in range(args.repeats):
            for key in keys:
                job, r, files = info[key], rows[key], job_files(key)
                what = (job["image_size"], settings.train.batch_size, job["eval_batch_size"],
                        args.images or job["n_train"], args.floor_repeats)
                before = last[1] if last and last[0] == what else measure_floor(*what)
                augment = augmentation_seconds(workdir, key, settings.conditions[job["condition"]].transforms,
                                               job["n_train"], job["epochs"], settings.train.batch_size)
                rerun(workdir, key, args.configfile)
                last = (what, measure_floor(*what))  # also the floor before the next job when it does the same work
                r["floor_around_s"].append([job_floor(job, before), job_floor(job, last[1])])
                r["floor_s"].append(mean(r["floor_around_s"][-1]))
                r["wall_s"].append(benchmark_seconds(files[-1]))
                r["phases"].append(phase_seconds(files[-2]) or {})
                r["augment_s"] += [] if augment is None else [augment]
                r["identical"].append(all(filecmp.cmp(path, copies[path], shallow=False)
                                          for path in files[:len(RUN_FILES)]))
                print(f"repeat {repeat + 1}/{args.repeats} {key}: wall {r['wall_s'][-1]:.2f} s, floor "
                      f"{r['floor_s'][-1]:.2f} s" + (f", augmentation {augment:.2f} s" if augment else ""), flush=True)
    finally:
        for path, kept in copies.items():
            if kept.is_file():
                shutil.copy2(kept, path)
        shutil.rmtree(saved, ignore_errors=True)
    out = {}
    print(f"\n{'job':<52}{'wall/floor':>11}{'w/(f+a)':>9}{'paired':>8}{'outside s':>10}{'drift':>7}  identical")
    for key, r in rows.items():
        wall, floor = median(r["wall_s"]), median(r["floor_s"])
        augment = median(r["augment_s"]) if r["augment_s"] else None
        paired = [w / (f + a) for w, f, a in zip(r["wall_s"], r["floor_s"], r["augment_s"] or [0.0] * len(r["wall_s"]))]
        o = out[key] = {**r, "wall": wall, "floor": floor, "ratio": wall / floor, "augment": augment,
                        "ratio_with_augment": wall / (floor + (augment or 0.0)), "paired_ratios": paired,
                        "paired_ratio": median(paired),
                        "outside": median([w - p.get("train", 0.0) - p.get("evaluate", 0.0)
                                           for w, p in zip(r["wall_s"], r["phases"])]),
                        "drift": max(abs(after / before - 1) for before, after in r["floor_around_s"])}
        print(f"{key:<52}{o['ratio']:>11.3f}{o['ratio_with_augment']:>9.3f}{o['paired_ratio']:>8.3f}"
              f"{o['outside']:>10.2f}{o['drift']:>7.1%}  {all(r['identical'])}")
    return out


def projection(args, settings) -> dict:
    from weightscape.execution.projection import project

    k = args.jobs_per_gpu or settings.execution.jobs_per_gpu
    p = project(settings, args.project, args.gpus, k)
    print(f"projection: {p['jobs']} fine-tunes, {args.gpus} GPU(s) x {k} jobs per GPU = {p['lanes']} at once; rates "
          f"{args.project} ({p['device']}, measured {p['measured']})")
    for name, m in p["models"].items():
        r = m["rates"]
        print(f"  {name}: {m['jobs']} jobs at the rates of {m['measured_as']} ({r['image_size']} px, batch "
              f"{r['batch_size']}, {k} per GPU): {r['train_images_per_s']:.1f} training / "
              f"{r['inference_images_per_s']:.1f} inference images/s per job, start-up {r['startup_s']:.1f} s")
    print(f"  wall {p['wall_s'] / 3600:.2f} h (floor {p['lower_bound_s'] / 3600:.2f} h), {p['total_job_s'] / 3600:.2f} "
          f"job-hours; not projected: every rule but finetune" + "".join(
              f"; synthesize {name}: {n:,} images" for name, n in p["synthetic_images"].items()))
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", type=Path, default=Path("."))
    parser.add_argument("--configfile", nargs="+", type=Path, default=[])
    parser.add_argument("--idle", nargs="*", default=None, metavar="KEY")
    parser.add_argument("--project", type=Path, default=None, metavar="RATES")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    for name, default in (("cores", 2), ("repeats", None), ("floor-repeats", 3), ("images", None), ("gpus", 1),
                          ("jobs-per-gpu", None)):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    args.repeats = args.repeats or (2 if args.idle is not None else 3)
    workdir = args.workdir.resolve()
    settings = run_settings(workdir, args.configfile)
    out = (projection(args, settings) if args.project else idle(args, workdir, settings) if args.idle is not None
           else profile(args, workdir, settings))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
