"""Memory reuse (runtime.reuse_freed_memory) against glibc's defaults, side by side: EfficientNet-Lite0
inference at each eval batch size and one training epoch, page faults per image, and whether the outputs and
trained weights are bit-identical (they must be: only where memory comes from changes).

Each measurement runs in its own process (glibc's malloc settings are per process and fixed once set), the
variants alternating, median of --repeats. Run: python benchmarks/allocator.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("default", "reuse")


def child(variant: str, eval_batch: int, images: int, train_batch: int) -> dict:
    """One measurement in this process: inference over `images` images, then one training epoch."""
    import resource

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from _common import default_model_and_data
    from train_loop import bare_loop

    from weightscape import runtime

    if variant == "reuse":
        runtime.reuse_freed_memory()
    torch.set_num_threads(1)
    from weightscape.inputs import to_model_inputs

    built, raw, labels, spec = default_model_and_data(images, 48)
    inputs = to_model_inputs(raw, spec).contiguous(memory_format=torch.channels_last)
    labels = torch.as_tensor(labels)
    model = built.module.to(memory_format=torch.channels_last)

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    model.eval()
    with torch.inference_mode():
        model(inputs[:eval_batch])  # warm-up: kernels, first allocations
        start, faults_before = time.perf_counter(), faults()
        logits = torch.cat([model(inputs[i:i + eval_batch]) for i in range(0, images, eval_batch)])
        infer_s, infer_faults = time.perf_counter() - start, faults() - faults_before
    start, faults_before = time.perf_counter(), faults()
    bare_loop(model, inputs, labels, epochs=1, batch_size=train_batch, lr=1e-3, seed=0)
    train_s, train_faults = time.perf_counter() - start, faults() - faults_before
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return {"infer_ips": images / infer_s, "infer_faults": infer_faults / images,
            "train_ips": images / train_s, "train_faults": train_faults / images,
            "logits": hashlib.sha256(logits.numpy().tobytes()).hexdigest(),
            "weights": hashlib.sha256(weights.numpy().tobytes()).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--eval-batches", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "EVAL_BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.images, args.train_batch)))
        return

    results: dict[tuple[str, int], list[dict]] = {}
    for _ in range(args.repeats):
        for eval_batch in args.eval_batches:
            for variant in VARIANTS:
                out = subprocess.run([sys.executable, __file__, "--images", str(args.images), "--train-batch",
                                      str(args.train_batch), "--child", variant, str(eval_batch)],
                                     check=True, capture_output=True, text=True,
                                     env={**_environ(), "OMP_NUM_THREADS": "1"}).stdout
                results.setdefault((variant, eval_batch), []).append(json.loads(out.splitlines()[-1]))

    def median(variant: str, eval_batch: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(variant, eval_batch)])

    print(f"efficientnet_lite0 @ 48px, 1 thread, {args.images} images, train batch {args.train_batch}, "
          f"{args.repeats} alternating repeats (median), each in a fresh process")
    print(f"{'eval batch':>10} {'variant':>8} {'infer img/s':>12} {'faults/img':>11} {'train img/s':>12} "
          f"{'faults/img':>11}")
    for eval_batch in args.eval_batches:
        for variant in VARIANTS:
            figures = [median(variant, eval_batch, key) for key in ("infer_ips", "infer_faults", "train_ips",
                                                                    "train_faults")]
            print(f"{eval_batch:>10} {variant:>8} {figures[0]:>12.1f} {figures[1]:>11.1f} {figures[2]:>12.1f} "
                  f"{figures[3]:>11.1f}")
    reference = max(args.eval_batches)
    base = median("default", reference, "infer_ips")
    for eval_batch in args.eval_batches:
        print(f"inference, reuse at eval batch {eval_batch} / default at {reference}: "
              f"{median('reuse', eval_batch, 'infer_ips') / base:.3f}")
    print(f"training epoch, reuse / default: "
          f"{median('reuse', reference, 'train_ips') / median('default', reference, 'train_ips'):.3f}")
    logits = {r["logits"] for runs in results.values() for r in runs}
    weights = {r["weights"] for runs in results.values() for r in runs}
    print(f"bit-identical: logits across variants and eval batch sizes {len(logits) == 1}, "
          f"trained weights across variants {len(weights) == 1}")


def _environ() -> dict:
    """This environment without glibc malloc tunables, so that 'default' means glibc's defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}


if __name__ == "__main__":
    main()
