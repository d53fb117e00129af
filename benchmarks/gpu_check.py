"""GPU check of the paper's models: weightscape's training loop against a bare bf16 torch loop, side by side.

For each model of a config (default `configs/paper.yaml`: CLIP ViT-B/32 and CLIP RN50 at 224 px), built with
random weights (nothing is downloaded): a few hundred training steps of `weightscape.train.fit` and of the bare
loop anyone would write by hand (bf16 autocast, channels_last, Adam), alternating so machine noise hits both;
then the images/s of each and their ratio, the peak GPU memory of a training run, whether the loss, every weight
and the predictions stayed finite, and the spectra of the trained model (`weightscape.spectra.analyze`).

    python benchmarks/gpu_check.py [--config configs/paper.yaml] [--steps 150] [--repeats 2] [--device auto]

On a CPU (`--device cpu`, e.g. in tests) the same code runs in float32 with whatever small sizes are given. The
report is plain text, one `model ...` block per model and a last line `gpu_check: ok` or `gpu_check: FAILED (...)`;
the exit status is 0 only when every output was finite.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from weightscape.settings import Execution, Model, TrainSettings

REPO = Path(__file__).resolve().parent.parent
CLASSES = 100  # CIFAR-100's head, the larger of the paper's two


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "paper.yaml",
                        help="config whose models and train settings are checked (default: configs/paper.yaml)")
    parser.add_argument("--models", nargs="*", default=None, help="names of the config's models (default: all)")
    parser.add_argument("--steps", type=int, default=150, help="training steps per timed run (default 150)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating timed runs of each loop (default 2)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up steps (default 10)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's train.batch_size")
    parser.add_argument("--image-size", type=int, default=None, help="default: each model's image_size")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--no-spectra", action="store_true", help="skip the spectra of the trained models")
    args = parser.parse_args(argv)
    for name in ("steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    for name in ("batch_size", "image_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args


def load_settings(path: Path):
    """The config's settings (weightscape.settings.Settings, validated); a bad file ends the check with one line."""
    from weightscape.config import ConfigError, validated_settings

    if not path.is_file():
        sys.exit(f"gpu_check: config file {path} does not exist")
    try:
        return validated_settings(yaml.safe_load(path.read_text()) or {}, base_dir=REPO)
    except ConfigError as error:
        sys.exit(f"gpu_check: config error in {path}: {error}")


def batch_pool(batch_size: int, image_size: int, pool: int = 8, seed: int = 0):
    """A few fixed random batches (inputs on the host, like the pipeline's): the loops cycle through them."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch_size, 3, image_size, image_size, generator=generator),
             torch.randint(0, CLASSES, (batch_size,), generator=generator)) for _ in range(pool)]


def cycled(pool, steps: int):
    """`epoch_batches` for fit: one 'epoch' of `steps` batches from the pool."""
    def epoch(_generator):
        for step in range(steps):
            yield pool[step % len(pool)]
    return epoch


def bare_loop(model, pool, steps: int, lr: float, device: torch.device) -> float:
    """The reference: the plain bf16 loop anyone would write (channels_last, autocast on CUDA, Adam); last loss."""
    model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    loss = torch.zeros(())
    for step in range(steps):
        x, y = pool[step % len(pool)]
        x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with autocast:
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run, device: torch.device) -> tuple[float, object]:
    synchronize(device)
    start = time.perf_counter()
    result = run()
    synchronize(device)
    return time.perf_counter() - start, result


def all_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def check_model(model: Model, train: TrainSettings, args, execution: Execution) -> dict:
    """Train one model both ways, alternating; return the figures of its report block."""
    from weightscape.models import build_model
    from weightscape.train import fit, predict

    device = execution.torch_device()
    built = build_model(model.arch, CLASSES, weights="random", head_seed=0)
    image_size = args.image_size or model.image_size
    batch_size = args.batch_size or train.batch_size
    pool = batch_pool(batch_size, image_size)
    one_epoch = train.replace(epochs=1)
    runners = {
        "bare": lambda m: bare_loop(m, pool, args.steps, train.lr, device),
        "weightscape": lambda m: fit(m, cycled(pool, args.steps), one_epoch, weight_decay=0.0, seed=0,
                                     execution=execution)[-1]["train_loss"],
    }
    if args.warmup:
        bare_loop(copy.deepcopy(built.module), pool, args.warmup, train.lr, device)  # kernels, allocator
    seconds = {name: [] for name in runners}
    losses, peak_bytes, trained = [], 0, None
    for _ in range(args.repeats):
        for name, run in runners.items():
            network = copy.deepcopy(built.module)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            elapsed, loss = timed(lambda: run(network), device)
            seconds[name].append(elapsed)
            losses.append(loss)
            if device.type == "cuda":
                peak_bytes = max(peak_bytes, torch.cuda.max_memory_allocated(device))
            trained = network
            del network
    probabilities = predict(trained, pool[0][0], batch_size, device)
    rates = {name: batch_size * args.steps / statistics.median(values) for name, values in seconds.items()}
    figures = {
        "name": model.name, "arch": model.arch, "image_size": image_size, "batch_size": batch_size,
        "parameters": sum(p.numel() for p in built.module.parameters()), "rates": rates, "seconds": seconds,
        "ratio": rates["weightscape"] / rates["bare"], "peak_gib": peak_bytes / 2**30,
        "finite_loss": all(math.isfinite(v) for v in losses), "finite_weights": all_finite(trained),
        "finite_predictions": bool(torch.isfinite(probabilities).all()),
    }
    if not args.no_spectra:
        from weightscape.spectra import analyze

        elapsed, table = timed(lambda: analyze(trained.float().cpu()), torch.device("cpu"))
        analysed = table[table["status"] != "skipped"]
        figures["spectra"] = {"seconds": elapsed, "layers": len(table), "analysed": len(analysed),
                              "finite": bool(analysed[["log_norm", "stable_rank"]].notna().all().all()
                                             and (analysed["alpha"].fillna(-1) != -1).any())}
    return figures


def report(figures: dict, steps: int, repeats: int) -> list[str]:
    """The report block of one model (plain text)."""
    lines = [f"model {figures['name']} ({figures['arch']}, {figures['parameters'] / 1e6:.1f} M parameters, random "
             f"weights) @ {figures['image_size']} px, batch {figures['batch_size']}, {steps} steps x {repeats} "
             f"alternating runs (median)"]
    for name, rate in figures["rates"].items():
        runs = ", ".join(f"{s:.2f}" for s in figures["seconds"][name])
        lines.append(f"  {name:<12}{rate:>10.1f} images/s   runs (s): {runs}")
    lines.append(f"  ratio weightscape / bare = {figures['ratio']:.3f}")
    lines.append(f"  peak GPU memory {figures['peak_gib']:.2f} GiB")
    lines.append(f"  finite: loss {figures['finite_loss']}, weights {figures['finite_weights']}, "
                 f"predictions {figures['finite_predictions']}")
    if "spectra" in figures:
        s = figures["spectra"]
        lines.append(f"  spectra: {s['analysed']} of {s['layers']} layers analysed in {s['seconds']:.1f} s, "
                     f"finite {s['finite']}")
    return lines


def problems(figures: dict) -> list[str]:
    """What went wrong in one model's check (empty when everything is finite)."""
    found = [f"{figures['name']}: non-finite {what}" for what in ("loss", "weights", "predictions")
             if not figures[f"finite_{what}"]]
    if "spectra" in figures and not figures["spectra"]["finite"]:
        found.append(f"{figures['name']}: non-finite spectra")
    return found


def main(argv=None) -> int:
    args = parse_args(argv)

    settings = load_settings(args.config)
    models = settings.models
    unknown = sorted(set(args.models or []) - set(models))
    if unknown:
        sys.exit(f"gpu_check: --models {unknown[0]!r} is not a model of {args.config}; choose from: "
                 f"{', '.join(models)}")
    execution = dataclasses.replace(settings.execution, device=args.device)
    try:
        device = execution.torch_device()
    except RuntimeError as error:
        sys.exit(f"gpu_check: {error}")
    train = settings.train
    described = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (float32)"
    print(f"gpu_check: torch {torch.__version__} on {described}; config {args.config.name}; "
          f"bf16 {device.type == 'cuda' and train.bf16}", flush=True)
    failures = []
    for name in args.models or models:
        figures = check_model(models[name], train, args, execution)
        print("\n".join(report(figures, args.steps, args.repeats)), flush=True)
        failures += problems(figures)
    print("gpu_check: ok" if not failures else f"gpu_check: FAILED ({'; '.join(failures)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
