"""The fine-tune's OOD evaluation: every corruption x severity cell in one pass (runs.evaluate_ood) against one
short pass per cell (the code before it), side by side on a finished run's OOD sets and pretrained reference,
alternating, one thread; and whether both give the same metrics exactly.

Run after `make run` (or on any finished WORKDIR): python benchmarks/ood_pass.py [WORKDIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def per_cell(model, ood_files, spec, batch_size, device) -> dict:
    """The reference: one evaluate() call per cell, as runs.evaluate_ood did before the one-pass version."""
    import numpy as np

    from weightscape.inputs import to_model_inputs
    from weightscape.train import evaluate

    by_corruption = {}
    for path in ood_files:
        with np.load(path) as archive:
            images, labels, severities = archive["images"], archive["labels"], archive["severities"]
        by_corruption[Path(path).stem] = {
            str(int(severity)): {k: v for k, v in evaluate(model, to_model_inputs(images[i], spec), labels,
                                                           batch_size, device).items() if k in ("accuracy", "ece")}
            for i, severity in enumerate(severities)}
    return by_corruption


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", default=".")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    args = parser.parse_args()
    results = Path(args.workdir) / "results"
    ood_files = sorted((results / "data").glob("*/ood/*.npz"))
    infos = sorted((results / "models").glob("*/*/seed*/model.json"))
    if not ood_files or not infos:
        sys.exit(f"{results}: no OOD sets or pretrained reference found (results/data/*/ood/*.npz, "
                 "results/models/*/*/seed*/model.json); run `make run` first")

    from weightscape.runtime import pin_threads

    pin_threads(1)
    import torch

    from weightscape.checkpoints import load_checkpoint
    from weightscape.inputs import InputSpec
    from weightscape.runs import evaluate_ood

    model, info = load_checkpoint(infos[0].with_name("weights.safetensors"), infos[0])
    spec, cpu = InputSpec(info["image_size"], info["mean"], info["std"]), torch.device("cpu")
    runners = {"per cell": lambda: per_cell(model, ood_files, spec, args.eval_batch_size, cpu),
               "one pass": lambda: evaluate_ood(model, ood_files, spec, args.eval_batch_size, cpu)["by_corruption"]}
    runners["one pass"]()  # warm-up
    seconds, outputs = {name: [] for name in runners}, {}
    for _ in range(args.repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            outputs[name] = run()
            seconds[name].append(time.perf_counter() - start)
    cells = sum(len(v) for v in outputs["one pass"].values())
    print(f"{infos[0].parent}: {cells} OOD cells, eval batch {args.eval_batch_size}, 1 thread, "
          f"{args.repeats} alternating repeats (median)")
    for name, values in seconds.items():
        print(f"{name:<10} {statistics.median(values):7.2f} s   " + ", ".join(f"{v:.2f}" for v in values))
    ratio = statistics.median(seconds["per cell"]) / statistics.median(seconds["one pass"])
    identical = outputs["one pass"] == outputs["per cell"]
    print(f"speed-up one pass / per cell: {ratio:.3f}   metrics identical: {identical}")


if __name__ == "__main__":
    main()
