"""What a fine-tune job pays on a GPU before it runs at speed, and how k such jobs share one GPU.

    python benchmarks/gpu_jobs.py [--config configs/paper.yaml] [--models M ...] [--no-warm-up] [--share 1,2,4,8]
                                  [--seconds 8] [--rates FILE] [--device auto] [--batch-size B] [--image-size S]

Each job is a process, as a pipeline job is: the config's model (random weights) trained by weightscape.train.fit
with the config's train settings (bf16 on CUDA) on fixed batches, one CPU thread.
warm-up  a fresh job per setting (as the pipeline runs: lazy CUDA modules, no cuDNN autotuning; modules loaded
         eagerly; cudnn.benchmark on), seconds of: imports, CUDA context, weights and a batch to the device, the first
         step, a batch of another size (an epoch's last) and the first evaluation against steady ones; overhead =
         context + to device + data + what those firsts take beyond steady; warm 1 = the first step of the model
         built again in that process (what a persistent worker per GPU would save); libcuda = the imports alone
         loaded the CUDA driver (a fork server on a GPU machine is safe only where they do not).
share    k jobs train for --seconds at once, then evaluate: images/s of all k and of one, a job's peak memory,
         GPU utilisation and memory (nvidia-smi every 250 ms).
--rates  merges the figures into the file grid_profile.py --project reads (weightscape.execution.projection).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

from gpu_check import CLASSES, REPO, batch_pool, cycled, load_settings, synchronize, timed

SETTINGS = {"as the pipeline runs": ({"CUDA_MODULE_LOADING": "LAZY"}, []),
            "CUDA_MODULE_LOADING=EAGER": ({"CUDA_MODULE_LOADING": "EAGER"}, []),
            "cudnn.benchmark on": ({"CUDA_MODULE_LOADING": "LAZY"}, ["--cudnn-benchmark"])}
PHASES = {"imports": "imports", "context": "context", "to_device": "to dev", "data": "data", "first_step": "step 1",
          "steady_step": "steady", "odd_step": "odd", "first_eval": "eval 1", "steady_eval": "eval", "overhead":
          "overhead", "warm_first_step": "warm 1"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "paper.yaml")
    parser.add_argument("--models", nargs="*", default=None, help="names of the config's models (default: all)")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the warm-up table")
    parser.add_argument("--share", type=lambda v: sorted({int(k) for k in v.split(",")}), default=[], metavar="K,K")
    parser.add_argument("--seconds", type=float, default=8.0, help="each --share window (default 8)")
    parser.add_argument("--rates", type=Path, default=None, help="merge the figures into this JSON file")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's train.batch_size")
    parser.add_argument("--image-size", type=int, default=None, help="default: each model's image_size")
    parser.add_argument("--job", default=None, help=argparse.SUPPRESS)  # run as one job of this model
    parser.add_argument("--cudnn-benchmark", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(k < 1 for k in args.share) or args.seconds <= 0:
        parser.error("--share takes whole numbers >= 1 and --seconds a positive number")
    return args


def marked(pool, steps: int, odd, marks: list):
    """`epoch_batches` for fit that notes the time before each batch: `steps` pool batches, then `odd`."""
    def epoch(_generator):
        for step in range(steps):
            marks.append(time.perf_counter())
            yield pool[step % len(pool)]
        marks.append(time.perf_counter())
        yield odd
    return epoch


def job(model, train, args, execution) -> None:
    """One job: the warm-up phases (one JSON line), then a timed window per stdin line `train|inference SECONDS`,
    each answered with {images, seconds, peak_gib}."""
    from weightscape.models import build_model
    from weightscape.runtime import own_process_start_time, pin_threads
    from weightscape.train import fit, predict

    pin_threads(1)
    f = {"imports": time.time() - own_process_start_time(),
         "libcuda": bool(re.search(r"/libcuda\.so", Path("/proc/self/maps").read_text()))}
    start = time.perf_counter()
    device = execution.torch_device()
    torch.empty(1, device=device)
    synchronize(device)
    f["context"] = time.perf_counter() - start
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    size, batch = args.image_size or model.image_size, args.batch_size or train.batch_size
    pool, one = batch_pool(batch, size), train.replace(epochs=1)
    odd = tuple(t[: max(1, batch // 2)] for t in pool[0])
    for warm in (False, True):  # warm: the same model built again in this process
        network = build_model(model.arch, CLASSES, weights="random", head_seed=0).module
        to_device, _ = timed(lambda: network.to(device, memory_format=torch.channels_last), device)
        data, _ = timed(lambda: pool[1][0].to(device, memory_format=torch.channels_last), device)
        marks = []
        fit(network, marked(pool, 12, odd, marks), one, weight_decay=0.0, seed=0, execution=execution)
        steps = [b - a for a, b in zip(marks, marks[1:] + [time.perf_counter()])]
        evals = [timed(lambda: predict(network, pool[0][0], batch, device), device)[0] for _ in range(4)]
        if not warm:
            f.update(to_device=to_device, data=data, first_step=steps[0], steady_step=statistics.median(steps[3:-1]),
                     odd_step=steps[-1], first_eval=evals[0], steady_eval=statistics.median(evals[1:]))
    f["warm_first_step"] = steps[0]
    f["overhead"] = (f["context"] + f["to_device"] + f["data"] + f["first_step"] + f["odd_step"]
                     - 2 * f["steady_step"] + f["first_eval"] - f["steady_eval"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(json.dumps({"device": name, "image_size": size, "batch_size": batch, "phases": f}), flush=True)
    for line in sys.stdin:
        kind, seconds = line.split()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start, images = time.perf_counter(), [0]
        deadline = start + float(seconds)

        def until(_generator):
            while time.perf_counter() < deadline:
                images[0] += batch
                yield pool[images[0] // batch % len(pool)]
        if kind == "train":
            fit(network, until, one, weight_decay=0.0, seed=0, execution=execution)
        while kind == "inference" and time.perf_counter() < deadline:
            predict(network, pool[images[0] // batch % len(pool)][0], batch, device)
            images[0] += batch
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
        print(json.dumps({"images": images[0], "seconds": time.perf_counter() - start, "peak_gib": peak}), flush=True)


def start_jobs(args, name: str, count: int, env: dict | None = None, extra=()) -> list[subprocess.Popen]:
    sizes = [item for key in ("batch_size", "image_size") if getattr(args, key) is not None
             for item in (f"--{key.replace('_', '-')}", str(getattr(args, key)))]
    command = [sys.executable, __file__, "--config", str(args.config), "--device", args.device, *sizes, "--job", name,
               *extra]
    return [subprocess.Popen(command, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env={**os.environ, **(env or {})}) for _ in range(count)]


def answer(process: subprocess.Popen) -> dict:
    """The next JSON line a job prints (other lines, e.g. a library's notice, are skipped)."""
    for line in process.stdout:
        if line.startswith("{"):
            return json.loads(line)
    sys.exit(f"gpu_jobs: a job ended with status {process.wait()} without answering (its stderr is above)")


def stop(jobs: list[subprocess.Popen]) -> None:
    for process in jobs:
        process.stdin.close()
        process.wait(timeout=120)


def warm_up(args, names: list[str]) -> dict:
    print("warm-up, seconds (one fresh job per setting)\n" + " " * 28 + "".join(f"{v:>9}" for v in PHASES.values())
          + "  libcuda")
    found = {}
    for name in names:
        print(name)
        for setting, (env, extra) in SETTINGS.items():
            [process] = start_jobs(args, name, 1, env, extra)
            ready = answer(process)
            stop([process])
            f = ready["phases"]
            found.setdefault(name, {"device": ready["device"], "warmup": {}})["warmup"][setting] = f
            print(f"  {setting:<26}" + "".join(f"{f[key]:>9.3f}" for key in PHASES) + f"  {f['libcuda']}", flush=True)
        default = found[name]["warmup"]["as the pipeline runs"]
        found[name]["startup_s"] = default["imports"] + default["overhead"]
    return found


def gpu_sampler() -> subprocess.Popen | None:
    """nvidia-smi sampling the first visible GPU's utilisation (%) and memory (MiB) every 250 ms; None without it."""
    from weightscape.execution.gpus import visible_gpus

    if shutil.which("nvidia-smi") is None:
        return None
    return subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                             "-lms", "250", "-i", (visible_gpus() or ["0"])[0]], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def gpu_samples(sampler) -> tuple[float | None, float | None]:
    """(mean utilisation %, most memory used in GiB) that the sampler saw."""
    if sampler is None:
        return None, None
    sampler.terminate()
    rows = [[float(v) for v in line.split(",")] for line in sampler.communicate()[0].splitlines() if "," in line]
    return (statistics.mean(r[0] for r in rows), max(r[1] for r in rows) / 1024) if rows else (None, None)


def share(args, names: list[str], models) -> dict:
    print(f"k concurrent jobs on one GPU, {args.seconds:g} s windows: images/s of all k (agg) and of one (job, "
          f"their mean); peak GiB of a job; GPU utilisation % and memory GiB (nvidia-smi)")
    found = {}
    for name in names:
        jobs = start_jobs(args, name, max(args.share))
        ready = [answer(process) for process in jobs][0]
        entry = found[name] = {"arch": models[name].arch, "device": ready["device"], "jobs": {},
                               **{key: ready[key] for key in ("image_size", "batch_size")}}
        print(f"model {name} @ {ready['image_size']} px, batch {ready['batch_size']}, on {ready['device']}\n"
              f"{'k':>3}{'train agg':>11}{'job':>8}{'x k=1':>7}{'eval agg':>10}{'job':>8}{'peak GiB':>9}"
              f"{'util %':>8}{'mem GiB':>8}")
        for k in args.share:
            row = {}
            for kind in ("train", "inference"):
                sampler = gpu_sampler()
                for process in jobs[:k]:
                    process.stdin.write(f"{kind} {args.seconds}\n")
                    process.stdin.flush()
                done = [answer(process) for process in jobs[:k]]
                util, memory = gpu_samples(sampler)
                row.update({f"{kind}_images_per_s": statistics.mean(d["images"] / d["seconds"] for d in done),
                            f"aggregate_{kind}_images_per_s": sum(d["images"] for d in done) / max(
                                d["seconds"] for d in done), f"{kind}_peak_gib": max(d["peak_gib"] for d in done),
                            f"{kind}_gpu_utilization": util, f"{kind}_gpu_memory_gib": memory})
            entry["jobs"][str(k)] = row
            first = entry["jobs"][str(args.share[0])]["aggregate_train_images_per_s"] / args.share[0]
            smi = [f"{v:.1f}" if v is not None else "n/a" for v in (row["train_gpu_utilization"],
                                                                    row["train_gpu_memory_gib"])]
            print(f"{k:>3}{row['aggregate_train_images_per_s']:>11.1f}{row['train_images_per_s']:>8.1f}"
                  f"{row['aggregate_train_images_per_s'] / first:>7.2f}{row['aggregate_inference_images_per_s']:>10.1f}"
                  f"{row['inference_images_per_s']:>8.1f}{row['train_peak_gib']:>9.2f}{smi[0]:>8}{smi[1]:>8}",
                  flush=True)
        stop(jobs)
    return found


def merge_rates(path: Path, found: dict) -> None:
    rates = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    rates.update(measured=date.today().isoformat(), torch=torch.__version__)
    for name, entry in found.items():
        rates["device"] = entry["device"]
        rates["models"].setdefault(name, {}).update(entry)
    path.write_text(json.dumps(rates, indent=1))
    print(f"gpu_jobs: figures merged into {path}")


def main(argv=None) -> int:
    import dataclasses

    args = parse_args(argv)
    settings = load_settings(args.config)
    unknown = sorted(set(args.models or []) - set(settings.models))
    if unknown:
        sys.exit(f"gpu_jobs: --models {unknown[0]!r} is not a model of {args.config}")
    execution = dataclasses.replace(settings.execution, device=args.device)
    if args.job:
        job(settings.models[args.job], settings.train, args, execution)
        return 0
    names = args.models or list(settings.models)
    found = {} if args.no_warm_up else warm_up(args, names)
    for name, entry in (share(args, names, settings.models) if args.share else {}).items():
        found.setdefault(name, {}).update(entry)
    if args.rates and found:
        merge_rates(args.rates, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
