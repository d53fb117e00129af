"""Training speed of a fine-tune job, each job a process as the pipeline runs one: weightscape's loop against a bare
hand-written loop, what a job pays before it runs at speed, and how k jobs share a device.

    python benchmarks/train_loop.py [--config config.yaml] [--device auto] [--seconds 8] [--repeats 3]
                                    [--share 1 2 4 8] [--rates FILE]

A job trains a model of the config (random weights: nothing is downloaded; the head of the config's largest dataset)
with weightscape.train.fit and the config's train settings on fixed random batches, on one CPU thread: in float32 on
a CPU, in bf16 on CUDA (benchmarks/gpu_check.sh runs it there on configs/paper.yaml).
loops    --seconds windows of fit and of the bare loop anyone would write (_common.bare_loop, Adam; on a CPU in the
         default NCHW layout, while fit trains in channels_last, which oneDNN runs faster, so the ratio can exceed 1;
         on CUDA in channels_last with bf16 autocast), alternating --repeats times so that machine noise hits both,
         then one of inference: median images/s of each, the ratio fit / bare (goal >= 0.9), peak GPU memory, and
         whether the loss, the predictions and every weight stayed finite.
warm-up  a fresh job per setting: as the pipeline runs (lazy CUDA modules, no cuDNN autotuning; the loops run in this
         one), and on CUDA also with modules loaded eagerly and with cudnn.benchmark on; seconds of: imports, device
         context, weights and a batch to the device, the first step, a batch of another size (an epoch's last) and
         the first evaluation against steady ones; overhead = context + to device + data + what those firsts take
         beyond steady; warm 1 = the first step of the model built again in that process (what a persistent worker
         per GPU would save); libcuda = the imports alone loaded the CUDA driver (a fork server on a GPU machine is
         safe only where they do not).
share    k jobs train for --seconds at once, then evaluate: images/s of all k and of one, a job's peak memory, GPU
         utilisation and memory (nvidia-smi every 250 ms).
--rates merges the figures into the file that grid_profile.py --project reads (weightscape.execution.projection).
The last line is `train_loop: ok` or `train_loop: FAILED (...)`; the exit status is 0 only when every output was
finite.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
import yaml

from _common import REPO, bare_loop, options, timed

SETTINGS = {"as the pipeline runs": {"CUDA_MODULE_LOADING": "LAZY"},
            "CUDA_MODULE_LOADING=EAGER": {"CUDA_MODULE_LOADING": "EAGER"},
            "cudnn.benchmark on": {"CUDA_MODULE_LOADING": "LAZY", "TRAIN_LOOP_CUDNN_BENCHMARK": "1"}}
PHASES = {"imports": "imports", "context": "context", "to_device": "to dev", "data": "data", "first_step": "step 1",
          "steady_step": "steady", "odd_step": "odd", "first_eval": "eval 1", "steady_eval": "eval", "overhead":
          "overhead", "warm_first_step": "warm 1"}


# --- one job --------------------------------------------------------------------------------------------------------
def batch_pool(batch_size: int, image_size: int, classes: int, pool: int = 8, seed: int = 0):
    """A few fixed random batches (inputs on the host, like the pipeline's) that the loops cycle through."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch_size, 3, image_size, image_size, generator=generator),
             torch.randint(0, classes, (batch_size,), generator=generator)) for _ in range(pool)]


def until(deadline: float, pool, seen: list):
    """`epoch_batches` for fit: the pool's batches round and round until `deadline` (perf_counter); `seen` gets the
    size of each."""
    def epoch(_generator=None):
        while time.perf_counter() < deadline:
            seen.append(len(pool[0][1]))
            yield pool[len(seen) % len(pool)]
    return epoch


def marked(pool, steps: int, odd, marks: list):
    """`epoch_batches` for fit that notes the time before each batch: `steps` pool batches, then `odd`."""
    def epoch(_generator):
        for step in range(steps):
            marks.append(time.perf_counter())
            yield pool[step % len(pool)]
        marks.append(time.perf_counter())
        yield odd
    return epoch


def job(model, classes: int, train, execution) -> None:
    """One job: its warm-up phases (one JSON line), then per stdin line `KIND SECONDS` a window of KIND (train: fit,
    bare: bare_loop, inference: predict) answered with {images, seconds, peak_gib, finite}: finite when the loss or
    predictions and every weight stayed finite."""
    from weightscape.models import build_model
    from weightscape.runtime import own_process_start_time, pin_threads
    from weightscape.train import fit, predict

    pin_threads(1)
    f = {"imports": time.time() - own_process_start_time(),
         "libcuda": bool(re.search(r"/libcuda\.so", Path("/proc/self/maps").read_text()))}
    start = time.perf_counter()
    device = execution.torch_device()
    torch.empty(1, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    f["context"] = time.perf_counter() - start
    torch.backends.cudnn.benchmark = os.environ.get("TRAIN_LOOP_CUDNN_BENCHMARK") == "1"
    size, batch = model.image_size, train.batch_size
    pool, one = batch_pool(batch, size, classes), train.replace(epochs=1)
    odd = tuple(t[: max(1, batch // 2)] for t in pool[0])
    for warm in (False, True):  # warm: the same model built again in this process
        network = build_model(model.arch, classes, weights="random", head_seed=0).module
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
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (float32)"
    print(json.dumps({"device": name, "image_size": size, "batch_size": batch, "phases": f,
                      "parameters": sum(p.numel() for p in network.parameters())}), flush=True)

    windows = {  # each says whether its outputs stayed finite
        "train": lambda batches: math.isfinite(fit(network, batches, one, weight_decay=0.0, seed=0,
                                                   execution=execution)[-1]["train_loss"]),
        "bare": lambda batches: math.isfinite(bare_loop(network, batches(), train.lr, device, memory_format=(
            torch.channels_last if device.type == "cuda" else torch.contiguous_format))),
        "inference": lambda batches: all(bool(torch.isfinite(predict(network, x, batch, device)).all())
                                         for x, _ in batches())}
    for line in sys.stdin:
        kind, seconds = line.split()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seen = []
        elapsed, finite = timed(lambda: windows[kind](until(time.perf_counter() + float(seconds), pool, seen)), device)
        finite = finite and all(bool(torch.isfinite(p).all()) for p in network.parameters())
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
        print(json.dumps({"images": sum(seen), "seconds": elapsed, "peak_gib": peak, "finite": finite}), flush=True)


# --- the jobs of one model, from the outside ------------------------------------------------------------------------
def start_jobs(args, name: str, count: int, env: dict | None = None) -> list[subprocess.Popen]:
    """`count` jobs of the model `name`, each this script run with the same arguments and --job."""
    return [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--job", name], text=True, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env={**os.environ, **(env or {})}) for _ in range(count)]


def ask(jobs: list[subprocess.Popen], request: str) -> list[dict]:
    """Each job's answer to `request`, asked of all of them at once."""
    for process in jobs:
        process.stdin.write(request + "\n")
        process.stdin.flush()
    return [answer(process) for process in jobs]


def answer(process: subprocess.Popen) -> dict:
    """The next JSON line a job prints (other lines, e.g. a library's notice, are skipped)."""
    for line in process.stdout:
        if line.startswith("{"):
            return json.loads(line)
    sys.exit(f"train_loop: a job ended with status {process.wait()} without answering (its stderr is above)")


def stop(jobs: list[subprocess.Popen]) -> None:
    for process in jobs:
        process.stdin.close()
        process.wait(timeout=120)


def warm_up_and_loops(args, name: str) -> dict:
    """A fresh job per setting (on a CPU the first only); the first of them also runs the loops."""
    entry = {"warmup": {}}
    for setting, env in SETTINGS.items():
        [process] = start_jobs(args, name, 1, env)
        ready = answer(process)
        entry["warmup"][setting] = ready.pop("phases")
        if "loops" not in entry:
            runs = {"bare": [], "train": []}
            for _ in range(args.repeats):
                for kind in runs:
                    runs[kind] += ask([process], f"{kind} {args.seconds}")
            runs["inference"] = ask([process], f"inference {args.seconds}")  # the trained model's predictions
            rates = {label: statistics.median(r["images"] / r["seconds"] for r in rows) for label, rows in runs.items()}
            windows = [r for rows in runs.values() for r in rows]
            entry.update(ready, loops={"rates": rates, "runs": runs, "ratio": rates["train"] / rates["bare"],
                                       "peak_gib": max(r["peak_gib"] for r in windows),
                                       "finite": all(r["finite"] for r in windows)})
        stop([process])
        if entry["device"].startswith("cpu"):  # the CUDA settings change nothing there
            break
    default = entry["warmup"]["as the pipeline runs"]
    entry["startup_s"] = default["imports"] + default["overhead"]
    return entry


def report(name: str, entry: dict, args) -> list[str]:
    """The warm-up table and the loops of one model (plain text)."""
    loops = entry["loops"]
    lines = [f"model {name} ({entry['arch']}, {entry['parameters'] / 1e6:.1f} M parameters, random weights) @ "
             f"{entry['image_size']} px, batch {entry['batch_size']}, on {entry['device']}",
             "  warm-up, seconds (one fresh job per setting)",
             " " * 28 + "".join(f"{v:>9}" for v in PHASES.values()) + "  libcuda"]
    for setting, f in entry["warmup"].items():
        lines.append(f"  {setting:<26}" + "".join(f"{f[key]:>9.3f}" for key in PHASES) + f"  {f['libcuda']}")
    lines.append(f"  loops: {args.repeats} alternating {args.seconds:g} s windows each (median); train = fit")
    for kind, rate in loops["rates"].items():
        runs = ", ".join(f"{r['images'] / r['seconds']:.1f}" for r in loops["runs"][kind])
        lines.append(f"  {kind:<12}{rate:>10.1f} images/s   runs: {runs}")
    return lines + [f"  ratio fit / bare = {loops['ratio']:.3f}   (goal >= 0.9)",
                    f"  peak GPU memory {loops['peak_gib']:.2f} GiB",
                    f"  finite (loss, predictions, weights): {loops['finite']}"]


def _numbers(line: str) -> list[float] | None:
    """One nvidia-smi sample ('57, 10240'), or None for a line with a value it could not read ('[N/A]' under MIG)."""
    try:
        values = [float(v) for v in line.split(",")]
    except ValueError:
        return None
    return values if len(values) == 2 else None


def window(jobs: list[subprocess.Popen], kind: str, seconds: float) -> dict:
    """A window of `kind` in all the jobs at once: images/s of all (aggregate) and of one (their mean), a job's peak
    memory, the first visible GPU's utilisation (%, mean) and memory (GiB, most) from nvidia-smi every 250 ms."""
    from weightscape.execution.gpus import visible_gpus

    smi = shutil.which("nvidia-smi") and subprocess.Popen(
        ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "250",
         "-i", (visible_gpus() or ["0"])[0]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    done, samples = ask(jobs, f"{kind} {seconds}"), []
    if smi:
        smi.terminate()
        samples = [row for row in (_numbers(line) for line in smi.communicate()[0].splitlines()) if row]
    return {f"{kind}_images_per_s": statistics.mean(d["images"] / d["seconds"] for d in done),
            f"aggregate_{kind}_images_per_s": sum(d["images"] for d in done) / max(d["seconds"] for d in done),
            f"{kind}_peak_gib": max(d["peak_gib"] for d in done),
            f"{kind}_gpu_utilization": statistics.mean(s[0] for s in samples) if samples else None,
            f"{kind}_gpu_memory_gib": max(s[1] for s in samples) / 1024 if samples else None}


def share(args, name: str) -> dict:
    """k concurrent jobs of one model for each k of --share: a row of figures per k."""
    print(f"  k concurrent jobs, {args.seconds:g} s windows: images/s of all k (agg) and of one (job, their mean); "
          f"peak GiB of a job; GPU utilisation % and memory GiB (nvidia-smi)\n"
          f"{'k':>5}{'train agg':>11}{'job':>8}{'x k=1':>7}{'eval agg':>10}{'job':>8}{'peak GiB':>9}{'util %':>8}"
          f"{'mem GiB':>8}")
    jobs, found = start_jobs(args, name, max(args.share), SETTINGS["as the pipeline runs"]), {}
    for process in jobs:
        answer(process)
    for k in args.share:
        row = found[str(k)] = {**window(jobs[:k], "train", args.seconds), **window(jobs[:k], "inference", args.seconds)}
        first = found[str(args.share[0])]["aggregate_train_images_per_s"] / args.share[0]
        smi = [f"{v:.1f}" if v is not None else "n/a" for v in (row["train_gpu_utilization"],
                                                                row["train_gpu_memory_gib"])]
        print(f"{k:>5}{row['aggregate_train_images_per_s']:>11.1f}{row['train_images_per_s']:>8.1f}"
              f"{row['aggregate_train_images_per_s'] / first:>7.2f}{row['aggregate_inference_images_per_s']:>10.1f}"
              f"{row['inference_images_per_s']:>8.1f}{row['train_peak_gib']:>9.2f}{smi[0]:>8}{smi[1]:>8}", flush=True)
    stop(jobs)
    return found


def merge_rates(path: Path, found: dict) -> None:
    rates = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    rates.update(measured=date.today().isoformat(), torch=torch.__version__)
    for name, entry in found.items():
        rates["device"] = entry["device"]
        rates["models"].setdefault(name, {}).update(entry)
    path.write_text(json.dumps(rates, indent=1))
    print(f"train_loop: figures merged into {path}")


def main() -> int:
    from weightscape.config import ConfigError, validated_settings
    from weightscape.execution.projection import class_count

    args = options(__doc__, config=REPO / "config.yaml", device="auto", seconds=8.0, repeats=3, share=[], rates=None,
                   job=None)  # --job NAME: run as one job of that model
    args.share = sorted({int(k) for k in args.share})
    if min([args.seconds, args.repeats, *args.share]) <= 0:
        sys.exit("train_loop: --seconds, --repeats and --share take positive numbers")
    try:
        settings = validated_settings(yaml.safe_load(args.config.read_text()) or {}, base_dir=REPO)
    except (OSError, ConfigError) as error:
        sys.exit(f"train_loop: config {args.config}: {error}")
    if args.job:
        execution = dataclasses.replace(settings.execution, device=args.device)
        job(settings.models[args.job], max(map(class_count, settings.datasets.values())), settings.train, execution)
        return 0
    print(f"train_loop: torch {torch.__version__}; config {args.config.name}; bf16 on CUDA {settings.train.bf16}")
    found, failures = {}, []
    for name, model in settings.models.items():
        found[name] = {"arch": model.arch, **warm_up_and_loops(args, name)}
        print("\n".join(report(name, found[name], args)), flush=True)
        failures += [] if found[name]["loops"]["finite"] else [f"{name}: non-finite loss, predictions or weights"]
        if args.share:
            found[name]["jobs"] = share(args, name)
    if args.rates:
        merge_rates(Path(args.rates), found)
    print("train_loop: ok" if not failures else f"train_loop: FAILED ({'; '.join(failures)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
