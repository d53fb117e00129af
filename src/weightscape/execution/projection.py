"""How long a config's fine-tunes take on G GPUs with k jobs per GPU, from measured rates (benchmarks/train_loop.py
--rates writes the rates file; benchmarks/grid_profile.py --project prints the projection).

A fine-tune's work is what it trains and evaluates, counted from the config (benchmarks/grid_profile.py takes the
same counts for a finished run's floor): n_train x epochs training images (a synthetic mix's n_train from
weightscape.synth.mixing), and val x (epochs + 1) + test + OOD images evaluated. With k jobs per GPU a job runs at
the per-job rates measured with k jobs sharing one GPU, plus a fixed start-up (imports, CUDA context, first-epoch
warm-up). G x k jobs run at once: the wall time is the longest-first greedy schedule of the jobs on G x k lanes
(never below total / lanes or the longest job). Other rules are not projected; the synthetic images the config needs
are counted, not timed.

The rates file (JSON): {"device": ..., "measured": date, "models": {name: {"arch": ..., "image_size": ...,
"batch_size": ..., "startup_s": s, "jobs": {"<k>": {"train_images_per_s": r, "inference_images_per_s": r}}}}},
per-job rates at k jobs per GPU; a config's model is found by name, else by arch.
"""

from __future__ import annotations

import heapq
import json
from pathlib import Path

#: classes of the datasets whose size the config does not state (an imagefolder's are counted from its folders)
CLASSES = {"fashion_mnist": 10, "cifar10": 10, "cifar100": 100}


def class_count(dataset) -> int:
    if dataset.source in CLASSES:
        return CLASSES[dataset.source]
    from weightscape.data.sources import _imagefolder_layout

    return len(_imagefolder_layout(dataset.source_options())[0])


def finetune_work(settings) -> list[dict]:
    """One row per fine-tune job of the config: model, dataset, condition, seed, train_images, eval_images."""
    from weightscape.data.sources import SOURCES
    from weightscape.synth.mixing import mix_counts

    ood, rows = settings.sections["ood"], []
    for dataset in settings.datasets.values():
        classes = class_count(dataset)
        test = dataset.test_per_class or SOURCES[dataset.source].per_class(dataset.source_options())[1]
        evaluated = (dataset.val_per_class * (settings.train.epochs + 1) + test
                     + len(ood["corruptions"]) * len(ood["severities"]) * ood["test_per_class"]) * classes
        for condition in settings.conditions.values():
            per_class = dataset.train_per_class
            if condition.mix:
                per_class = sum(mix_counts(condition.mix.scheme, condition.mix.p, per_class))
            rows += [{"model": model, "dataset": dataset.name, "condition": condition.name, "seed": seed,
                      "train_images": per_class * classes * settings.train.epochs, "eval_images": evaluated}
                     for model in settings.models for seed in settings.seeds]
    return rows


def synthetic_images(settings) -> dict[str, int]:
    """generator -> the images rule synthesize makes for every dataset (per_class x classes each)."""
    used = {c.mix.generator for c in settings.conditions.values() if c.mix}
    return {name: settings.generators[name].per_class * sum(map(class_count, settings.datasets.values()))
            for name in sorted(used)}


def model_rates(rates: dict, model, jobs_per_gpu: int) -> tuple[dict, str]:
    """The measured rates of `model` (a settings Model) at `jobs_per_gpu`, and the name they were measured under."""
    measured = rates["models"]
    name = model.name if model.name in measured else next(
        (key for key, entry in measured.items() if entry.get("arch") == model.arch), None)
    if name is None:
        raise KeyError(f"no rates for model {model.name} ({model.arch}); measured: {', '.join(measured) or 'none'}")
    jobs = measured[name]["jobs"]
    if str(jobs_per_gpu) not in jobs:
        raise KeyError(f"{name}: no rates at {jobs_per_gpu} jobs per GPU; measured at {', '.join(sorted(jobs))}")
    return {**jobs[str(jobs_per_gpu)], "startup_s": measured[name].get("startup_s", 0.0),
            **{key: measured[name].get(key) for key in ("image_size", "batch_size")}}, name


def makespan(seconds: list[float], lanes: int) -> float:
    """Wall time of the jobs on `lanes` lanes, longest first, each to the lane that frees first."""
    ends = [0.0] * lanes
    for duration in sorted(seconds, reverse=True):
        heapq.heapreplace(ends, ends[0] + duration)
    return max(ends)


def project(settings, rates: dict | str | Path, gpus: int, jobs_per_gpu: int) -> dict:
    """The projected wall time of the config's fine-tunes (seconds), with the rates used per model."""
    if not isinstance(rates, dict):
        rates = json.loads(Path(rates).read_text())
    if gpus < 1 or jobs_per_gpu < 1:
        raise ValueError(f"gpus and jobs_per_gpu must be >= 1, got {gpus} and {jobs_per_gpu}")
    used = {name: model_rates(rates, model, jobs_per_gpu) for name, model in settings.models.items()}
    seconds, models = [], {}
    for job in finetune_work(settings):
        rate = used[job["model"]][0]
        seconds.append(rate["startup_s"] + job["train_images"] / rate["train_images_per_s"]
                       + job["eval_images"] / rate["inference_images_per_s"])
        entry = models.setdefault(job["model"], {"jobs": 0, "job_s": 0.0, "measured_as": used[job["model"]][1],
                                                 "rates": rate})
        entry["jobs"] += 1
        entry["job_s"] += seconds[-1]
    lanes = gpus * jobs_per_gpu
    return {"gpus": gpus, "jobs_per_gpu": jobs_per_gpu, "lanes": lanes, "jobs": len(seconds),
            "total_job_s": sum(seconds), "wall_s": makespan(seconds, lanes) if seconds else 0.0,
            "lower_bound_s": max([sum(seconds) / lanes, *seconds]) if seconds else 0.0, "models": models,
            "device": rates.get("device"), "measured": rates.get("measured"),
            "synthetic_images": synthetic_images(settings)}
