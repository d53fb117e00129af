"""Training-loop overhead: weightscape.train.fit vs a bare hand-written torch loop, side by side.

Same model (the pretrained EfficientNet-Lite0 + a 10-class head), same batch size, same real data (Fashion-MNIST
from the Debian package), same thread count. Runs alternate (bare, project, bare, project, ...) so that machine
noise hits both; the median of each is reported. Goal: project / bare >= 0.9. The bare loop keeps the default NCHW
layout; fit trains in channels_last (NHWC), which oneDNN runs faster, so the ratio can exceed 1.

    python benchmarks/train_loop.py [--images 640] [--epochs 2] [--repeats 3] [--threads 1] [--image-size 48]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from _common import add_model_arguments, bare_loop, default_model_and_data
from weightscape.runtime import pin_threads
from weightscape.settings import Execution, TrainSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    pin_threads(args.threads)

    from weightscape.inputs import to_model_inputs
    from weightscape.train import fit, tensor_batches

    built, images, labels, spec = default_model_and_data(args.images, args.image_size)
    inputs, labels = to_model_inputs(images, spec), torch.as_tensor(labels)
    train = TrainSettings(optimizer="adam", lr=1e-3, momentum=0.9, batch_size=args.batch_size, epochs=args.epochs,
                          weight_decay_mode="coupled", bf16=True)
    cpu = Execution(device="cpu", threads=args.threads, num_workers=0, eval_batch_size=256)
    runners = {
        "bare": lambda m: bare_loop(m, inputs, labels, args.epochs, args.batch_size, 1e-3, 0),
        "weightscape": lambda m: fit(m, tensor_batches(inputs, labels, args.batch_size), train, weight_decay=0.0,
                                     seed=0, execution=cpu),
    }
    runners["bare"](copy.deepcopy(built.module))  # warm-up (allocator, kernels) outside the timing
    rates = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            model = copy.deepcopy(built.module)
            start = time.perf_counter()
            run(model)
            rates[name].append(args.images * args.epochs / (time.perf_counter() - start))
    bare, ours = statistics.median(rates["bare"]), statistics.median(rates["weightscape"])
    print(f"model efficientnet_lite0 @ {args.image_size}px, batch {args.batch_size}, {args.images} images x "
          f"{args.epochs} epochs, {args.threads} thread(s), {args.repeats} alternating repeats (median)")
    print(f"{'loop':<12}{'images/s':>10}   runs")
    for name, values in rates.items():
        print(f"{name:<12}{statistics.median(values):>10.1f}   " + ", ".join(f"{v:.1f}" for v in values))
    print(f"ratio weightscape / bare = {ours / bare:.3f}   (goal >= 0.9)")


if __name__ == "__main__":
    main()
