"""Where a finished run's time went: Snakemake's benchmark tables per rule, the fine-tune jobs split into phases,
and the floor - the same training and evaluation work done by a bare torch loop in one process, with no I/O.

    python benchmarks/grid_profile.py [WORKDIR] [--cores 2] [--repeats 3] [--threads 1] [--images N]
                                      [--batch-size B] [--no-floor] [--no-augment] [--json PATH]

WORKDIR holds the run's results/ (and .snakemake/log/). Figures, all wall seconds:

rules     per rule: jobs, total and mean of column `s` of results/benchmarks/<rule>/...tsv (or <rule>.tsv; repeated
          rows of one table are averaged), share of the summed job time. Rules without a benchmark table (small
          table jobs) are timed from the Snakemake log (job start to `Finished`, 1 s resolution) when there is one,
          else omitted; the source column says which.
phases    summed over the fine-tune jobs: the `phase seconds:` line of each job's log (weightscape.runs.PhaseClock:
          startup = process start -> fine-tune function, load, train, evaluate, write) and `outside` = benchmark wall
          - sum of the phases (snakemake's wrapper, interpreter exit). A log without that line (older runs) is listed
          as `no phase line` and left out of the split. `outside compute` per job = wall - train - evaluate.
floor     measured here: a hand-written loop (channels_last, Adam, cross-entropy as weightscape.train.fit; inference
          in eval mode under torch.inference_mode) on EfficientNet-Lite0 pretrained + a 10-class head and real
          Fashion-MNIST images (benchmarks/_common.py), at the run's image size (model.json), training batch size
          (--batch-size, else train.batch_size of the config file on the Snakemake log's command line, else 64) and
          evaluation batch size (metrics.json), on --images training images (default: the run's most common
          training-set size, so that the floor's batches are the jobs', short last batch included); training and
          inference images/s alternate, median of --repeats.
          Per fine-tune job: train images = n_train x epochs (metrics.json; augmentation is not part of the floor),
          eval images = val x epochs + test + val + every OOD image (results/data/<dataset>/; each ood/*.npz holds
          S severities x N images), job floor = train images / train rate + eval images / inference rate. The
          fine-tune floor of the grid is the sum of the job floors (one thread each, as the jobs run).
augment   unless --no-augment: the bare cost of each augmented condition's augmentation (the condition's v2
          pipeline on each training image of every epoch, each batch made model-ready: _common.augmentation_seconds),
          measured once per condition and counted for each of its seeds. The floor leaves it out; floor +
          augmentation is the bare cost of all of the grid's work, shown beside it (and the run floor with it).
run       wall of the whole run: start (log file name) to last time stamp of the Snakemake log that finished the most
          jobs (the main invocation; reruns of a few jobs are not counted); without a log, earliest (file time - s)
          to latest file time of the benchmark tables. Compared to fine-tune floor / cores and to the RUN FLOOR =
          max(work / cores, longest job), work = every fine-tune job at its floor + every other job at its measured
          wall (no floor is measured for them), each job on one core: the wall of a perfect scheduler on --cores
          cores, dependencies ignored, if the fine-tunes cost only their bare compute. Run wall / run floor is the
          figure for "the run within 1.2x of its own floor". Idle core-s = cores x run wall - every job's wall: the
          part of the gap that is scheduling (a core without a job) rather than the jobs' own time.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import shlex
import statistics
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

PHASES = ("startup", "load", "train", "evaluate", "write")
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def benchmark_seconds(path: Path) -> float:
    """Wall seconds of one Snakemake benchmark table: column s, repeated rows averaged."""
    return float(pd.read_csv(path, sep="\t")["s"].mean())


def benchmark_jobs(results: Path) -> dict[str, dict[str, float]]:
    """rule -> {job key (path below the rule, no .tsv): wall seconds}."""
    jobs = defaultdict(dict)
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        parts = path.relative_to(results / "benchmarks").with_suffix("").parts
        jobs[parts[0]]["/".join(parts[1:])] = benchmark_seconds(path)
    return dict(jobs)


def snakemake_logs(workdir: Path) -> list[dict]:
    """The Snakemake logs that finished jobs, newest first: start, end, command line, (rule, seconds) per job."""
    logs = []
    for path in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True):
        now, rule, started, jobs, stamps, command = None, None, {}, [], [], ""
        for line in path.read_text().splitlines():
            if match := STAMP.match(line):
                now = datetime.strptime(match[1], "%a %b %d %H:%M:%S %Y")
                stamps.append(now)
            elif match := re.match(r"^(?:local)?rule (\w+):$", line):
                rule = match[1]
            elif rule and (match := re.match(r"^\s+jobid: (\d+)$", line)):
                started[match[1]], rule = (rule, now), None
            elif (match := re.match(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", line)) and match[1] in started:
                jobs.append((match[2], (now - started[match[1]][1]).total_seconds()))
            elif line.strip().startswith("Command:"):
                command = line.split("Command:", 1)[1]
        if jobs:
            try:
                start = datetime.strptime(path.name.split(".snakemake")[0], "%Y-%m-%dT%H%M%S.%f")
            except ValueError:
                start = stamps[0]
            logs.append({"path": str(path), "start": start, "end": stamps[-1], "jobs": jobs, "command": command})
    return logs


def config_files_of_run(log: dict | None, workdir: Path) -> list[Path]:
    """The --configfile(s) on the command line of a run's Snakemake log, as existing paths (none without a log)."""
    words, files = shlex.split(log["command"]) if log else [], []
    for i, word in enumerate(words):
        if word in ("--configfile", "--configfiles"):
            for name in words[i + 1:]:
                if name.startswith("-"):
                    break
                path = next((p for p in (Path(name), workdir / name) if p.is_file()), None)
                files += [path] if path else []
    return files


def batch_size_of_run(args, log: dict | None, workdir: Path) -> tuple[int, str]:
    """(training batch size, where it came from)."""
    if args.batch_size:
        return args.batch_size, "--batch-size"
    import yaml

    batch, source = 64, "default of config.yaml"
    for path in config_files_of_run(log, workdir):
        value = (yaml.safe_load(path.read_text()) or {}).get("train", {}).get("batch_size")
        batch, source = (value, f"config {path}") if value else (batch, source)
    return batch, source


def phase_seconds(log_path: Path) -> dict[str, float] | None:
    """The last `phase seconds:` line of a job log as {phase: seconds}; None without one."""
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if "phase seconds:" in line] \
        if log_path.is_file() else []
    if not lines:
        return None
    pairs = (item.rsplit(None, 1) for item in lines[-1].split("phase seconds:", 1)[1].split(","))
    return {name.strip(): float(value) for name, value in pairs}


def data_counts(data: Path) -> dict[str, int]:
    from weightscape.data.canonical import load_split

    counts = {split: len(load_split(data / f"{split}.npz")[1]) for split in ("val", "test")}
    counts["ood"] = 0
    for path in sorted((data / "ood").glob("*.npz")):
        with np.load(path) as archive:
            counts["ood"] += int(np.prod(archive["images"].shape[:2]))
    return counts


def finetune_jobs(results: Path, walls: dict[str, float]) -> list[dict]:
    """One row per fine-tune job: wall, phases, image counts, settings read from its outputs."""
    rows, data = [], {}
    for key, wall in walls.items():
        dataset, model, _, seed = key.split("/")
        metrics = json.loads((results / "runs" / key / "metrics.json").read_text())
        info = json.loads((results / "models" / model / dataset / seed / "model.json").read_text())
        if dataset not in data:
            data[dataset] = data_counts(results / "data" / dataset)
        counts = data[dataset]
        epochs = metrics["epochs"]
        steps = pd.read_csv(results / "runs" / key / "curve.csv")["step"].iloc[0]
        rows.append({"job": key, "wall_s": wall, "phases": phase_seconds(results / "logs" / "finetune" / f"{key}.log"),
                     "n_train": metrics["n_train"], "epochs": epochs, "steps_per_epoch": int(steps),
                     "image_size": info["image_size"],
                     # runs made before execution provenance was recorded evaluated in batches of 256
                     "eval_batch_size": metrics.get("execution", {}).get("eval_batch_size", 256),
                     "train_images": metrics["n_train"] * epochs,
                     "eval_images": counts["val"] * (epochs + 1) + counts["test"] + counts["ood"]})
    return rows


def training_set_size(jobs: list[dict]) -> int:
    """The most common training-set size of the fine-tune jobs: the floor trains on as many images, so that its
    batches are theirs (with the same short last batch)."""
    sizes = [job["n_train"] for job in jobs]
    return max(sorted(set(sizes)), key=sizes.count)


def job_floor_seconds(job: dict, rates: dict) -> float:
    """A fine-tune job's floor: its training images at the bare training rate + its evaluation images at the bare
    inference rate (`rates` from measure_floor)."""
    return job["train_images"] / rates["train_images_per_s"] + job["eval_images"] / rates["inference_images_per_s"]


def augmentation_floor(results: Path, jobs: list[dict], log: dict | None, workdir: Path, batch: int) -> float:
    """Set job["augment_s"] of every fine-tune job (None without augmentation; measured once per dataset, model and
    condition, whose seeds do the same work) and return their sum."""
    from _common import augmentation_seconds, run_settings

    conditions = run_settings(workdir, config_files_of_run(log, workdir)).conditions
    measured = {}
    for job in jobs:
        cell = job["job"].rsplit("/", 1)[0]
        condition = conditions.get(cell.split("/")[2])
        if cell not in measured:
            measured[cell] = condition and augmentation_seconds(results, job["job"], condition.transforms,
                                                                job["n_train"], job["epochs"], batch)
        job["augment_s"] = measured[cell]
    return sum(job["augment_s"] or 0.0 for job in jobs)


def measure_floor(image_size: int, batch_size: int, eval_batch: int, images: int, repeats: int) -> dict:
    """Median images/s of a bare training loop and a bare inference loop, alternating, after one warm-up each."""
    import torch
    from _common import default_model_and_data
    from train_loop import bare_loop

    from weightscape.inputs import to_model_inputs

    built, raw, labels, spec = default_model_and_data(images, image_size)
    inputs = to_model_inputs(raw, spec).contiguous(memory_format=torch.channels_last)
    labels = torch.as_tensor(labels)
    model = built.module.to(memory_format=torch.channels_last)

    def train() -> float:  # train_loop's bare loop, here on channels_last inputs like fit
        net = copy.deepcopy(model)
        start = time.perf_counter()
        bare_loop(net, inputs, labels, epochs=1, batch_size=batch_size, lr=1e-3, seed=0)
        return len(inputs) / (time.perf_counter() - start)

    def infer() -> float:
        model.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            for chunk in inputs.split(eval_batch):
                model(chunk)
        return len(inputs) / (time.perf_counter() - start)

    train(), infer()  # warm-up (allocator, kernels) outside the timing
    runs = {"train": [], "inference": []}
    for _ in range(repeats):
        runs["train"].append(train())
        runs["inference"].append(infer())
    return {"image_size": image_size, "batch_size": batch_size, "eval_batch_size": eval_batch, "images": images,
            "runs": runs, **{f"{name}_images_per_s": statistics.median(v) for name, v in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", type=Path, default=Path("."))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=None,
                        help="training images of the floor (default: the run's training-set size)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--no-floor", action="store_true", help="tables only, no torch measurement")
    parser.add_argument("--no-augment", action="store_true", help="no floor of the augmentation")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args()
    results = args.workdir / "results"
    tables, logs = benchmark_jobs(results), snakemake_logs(args.workdir)
    log = max(logs, key=lambda entry: len(entry["jobs"]), default=None)  # the main invocation (ties: the latest)
    out = {"workdir": str(args.workdir), "snakemake_logs": [entry["path"] for entry in logs], "rules": {}}

    # 1. rules
    for rule, jobs in tables.items():
        out["rules"][rule] = {"jobs": len(jobs), "total_s": sum(jobs.values()), "source": "benchmark"}
    untimed = defaultdict(list)  # rules without a benchmark table: their jobs in the latest log that ran them
    for entry in logs:
        ran = defaultdict(list)
        for rule, seconds in entry["jobs"]:
            ran[rule].append(seconds)
        for rule, seconds in ran.items():
            if rule not in tables and rule != "all" and rule not in untimed:
                untimed[rule] = seconds
    for rule, seconds in untimed.items():
        out["rules"][rule] = {"jobs": len(seconds), "total_s": sum(seconds), "source": "snakemake log"}
    summed = sum(r["total_s"] for r in out["rules"].values())
    print(f"rules of {args.workdir} (benchmark: column s of results/benchmarks; snakemake log: start to finish, "
          f"1 s resolution)")
    print(f"{'rule':<22}{'jobs':>5}{'total s':>10}{'mean s':>9}{'share':>8}   source")
    for rule, row in sorted(out["rules"].items(), key=lambda item: -item[1]["total_s"]):
        row.update(mean_s=row["total_s"] / row["jobs"], share=row["total_s"] / summed if summed else 0.0)
        print(f"{rule:<22}{row['jobs']:>5}{row['total_s']:>10.2f}{row['mean_s']:>9.2f}{row['share']:>8.1%}   "
              f"{row['source']}")
    print(f"{'all jobs':<22}{sum(r['jobs'] for r in out['rules'].values()):>5}{summed:>10.2f}")
    if not log:
        print("rules without a benchmark table: omitted (no Snakemake log with finished jobs)")

    # 2. fine-tune phases
    jobs = finetune_jobs(results, tables.get("finetune", {}))
    phased = [job for job in jobs if job["phases"] is not None]
    seen = {phase for job in phased for phase in job["phases"]}
    names = [phase for phase in PHASES if phase in seen] + sorted(seen - set(PHASES))
    totals = {name: sum(job["phases"].get(name, 0.0) for job in phased) for name in names}
    totals["outside"] = sum(job["wall_s"] - sum(job["phases"].values()) for job in phased)
    wall_phased = sum(job["wall_s"] for job in phased)
    out["phases"] = {"jobs": len(phased), "no_phase_line": [job["job"] for job in jobs if job["phases"] is None],
                     "total_s": totals, "wall_s": wall_phased}
    print(f"\nfine-tune phases: {len(phased)} job(s) with a phase line, {len(jobs) - len(phased)} without "
          f"(no phase line: left out)")
    if phased:
        print(f"{'phase':<22}{'total s':>10}{'mean s':>9}{'share':>8}")
        for name, seconds in [*totals.items(), ("wall", wall_phased)]:
            print(f"{name:<22}{seconds:>10.2f}{seconds / len(phased):>9.2f}{seconds / wall_phased:>8.1%}")
        if any("startup" not in job["phases"] for job in phased):
            print("(some phase lines have no startup: an older run; its startup is counted in `outside`)")

    # 3. floor
    batch, batch_source = batch_size_of_run(args, log, args.workdir)
    for job in jobs:
        if math.ceil(job["n_train"] / batch) != job["steps_per_epoch"]:
            print(f"note: {job['job']} ran {job['steps_per_epoch']} steps/epoch; batch {batch} ({batch_source}) "
                  f"gives {math.ceil(job['n_train'] / batch)}: pass --batch-size")
            break
    floors = {}
    if not args.no_floor and jobs:
        from weightscape.runtime import pin_threads

        pin_threads(args.threads)
        images = args.images or training_set_size(jobs)
        for size, eval_batch in sorted({(job["image_size"], job["eval_batch_size"]) for job in jobs}):
            floors[size, eval_batch] = measure_floor(size, batch, eval_batch, images, args.repeats)
    for job in jobs:
        rates = floors.get((job["image_size"], job["eval_batch_size"]))
        job["floor_s"] = rates and job_floor_seconds(job, rates)
    augment = augmentation_floor(results, jobs, log, args.workdir, batch) if floors and not args.no_augment else None
    n, wall = len(jobs), sum(job["wall_s"] for job in jobs)
    floor = sum(job["floor_s"] for job in jobs) if floors else None
    out["floor"] = {"measurements": list(floors.values()), "batch_size": batch, "batch_source": batch_source,
                    "jobs": n, "train_images": sum(job["train_images"] for job in jobs),
                    "eval_images": sum(job["eval_images"] for job in jobs), "wall_s": wall, "floor_s": floor,
                    "ratio": floor and wall / floor, "mean_wall_s": n and wall / n,
                    "mean_floor_s": floor and floor / n, "augment_s": augment,
                    "floor_with_augment_s": augment is not None and floor + augment or None,
                    "ratio_with_augment": augment is not None and wall / (floor + augment) or None,
                    "mean_outside_compute_s": sum(job["wall_s"] - job["phases"].get("train", 0.0) -
                                                  job["phases"].get("evaluate", 0.0) for job in phased) / len(phased)
                    if phased else None}
    out["finetune_jobs"] = jobs
    print(f"\nfloor: bare torch loop (channels_last, Adam; inference_mode), no I/O, {args.threads} thread(s), "
          f"train batch {batch} ({batch_source})")
    for m in floors.values():
        print(f"efficientnet_lite0 @ {m['image_size']}px, eval batch {m['eval_batch_size']}, {m['images']} images, "
              f"{args.repeats} alternating repeats (median)")
        print(f"{'loop':<12}{'images/s':>10}   runs")
        for name in ("train", "inference"):
            print(f"{name:<12}{m[name + '_images_per_s']:>10.1f}   " + ", ".join(f"{v:.1f}" for v in m["runs"][name]))
    f = out["floor"]
    print(f"{n} fine-tune jobs: {f['train_images']} train images (n_train x epochs; augmentation is not part of the "
          f"floor), {f['eval_images']} eval images (val x (epochs + 1) + test + OOD)")
    if n:
        print(f"{'':<28}{'grid s':>10}{'per job s':>11}")
        print(f"{'fine-tune wall':<28}{wall:>10.2f}{wall / n:>11.2f}")
        if floor:
            print(f"{'floor':<28}{floor:>10.2f}{floor / n:>11.2f}")
            print(f"{'wall / floor':<28}{wall / floor:>10.2f}")
        if augment is not None:
            augmented = sum(1 for job in jobs if job["augment_s"])
            print(f"{'augmentation (bare)':<28}{augment:>10.2f}{augment / n:>11.2f}   ({augmented} augmented jobs; "
                  f"left out of the floor)")
            print(f"{'floor + augmentation':<28}{floor + augment:>10.2f}{(floor + augment) / n:>11.2f}")
            print(f"{'wall / (floor + augment.)':<28}{wall / (floor + augment):>10.2f}")
        if f["mean_outside_compute_s"] is not None:
            print(f"{'outside compute (mean)':<28}{'':>10}{f['mean_outside_compute_s']:>11.2f}   "
                  f"(startup + load + write + outside the phases)")

    # 4. the whole run
    if log:
        run_wall = (log["end"] - log["start"]).total_seconds()
        source = f"snakemake log {Path(log['path']).name}, {len(log['jobs'])} jobs" + (
            f"; {len(logs) - 1} other invocation(s) not counted" if len(logs) > 1 else "")
    else:
        files = list((results / "benchmarks").rglob("*.tsv"))
        ends = [p.stat().st_mtime for p in files]
        starts = [p.stat().st_mtime - float(pd.read_csv(p, sep="\t")["s"].max()) for p in files]
        run_wall, source = (max(ends) - min(starts), "benchmark tables' file times") if files else (None, "none")
    others = [seconds for rule, row in tables.items() if rule != "finetune" for seconds in row.values()]
    others += [seconds for seconds_list in untimed.values() for seconds in seconds_list]
    run_floor = floor and max((floor + sum(others)) / args.cores, *(job["floor_s"] for job in jobs), *others)
    run_floor_augment = augment is not None and max((floor + augment + sum(others)) / args.cores, *others,
                                                    *(job["floor_s"] + (job["augment_s"] or 0.0) for job in jobs))
    out["run"] = {"wall_s": run_wall, "source": source, "cores": args.cores,
                  "finetune_floor_per_core_s": floor and floor / args.cores,
                  "ratio_to_finetune_floor": floor and run_wall and run_wall / (floor / args.cores),
                  "other_jobs_s": sum(others), "run_floor_s": run_floor,
                  "ratio": run_floor and run_wall and run_wall / run_floor,
                  "idle_core_s": run_wall and run_wall * args.cores - summed,
                  "run_floor_with_augment_s": run_floor_augment or None,
                  "ratio_with_augment": run_floor_augment and run_wall and run_wall / run_floor_augment or None}
    if run_wall is None:
        print("\nrun wall: unknown (no Snakemake log, no benchmark tables)")
    else:
        print(f"\nrun wall {run_wall:.1f} s ({source}), {args.cores} cores")
        print(f"{'idle core-s':<28}{out['run']['idle_core_s']:>10.2f}   (cores x run wall - all jobs' wall: cores "
              f"without a job, Snakemake's own time; {summed / (run_wall * args.cores):.1%} of the core time ran jobs)")
        if floor:
            r = out["run"]
            print(f"{'fine-tune floor / cores':<28}{r['finetune_floor_per_core_s']:>10.2f}   run wall / it "
                  f"{r['ratio_to_finetune_floor']:.2f}")
            print(f"{'run floor':<28}{run_floor:>10.2f}   run wall / it {r['ratio']:.2f}   (max((fine-tune floor + "
                  f"{r['other_jobs_s']:.1f} s other jobs) / cores, longest job))")
            if run_floor_augment:
                print(f"{'run floor + augmentation':<28}{run_floor_augment:>10.2f}   run wall / it "
                      f"{r['ratio_with_augment']:.2f}   (the same, each augmented job at floor + augmentation)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
