"""Augmentation throughput: images/s of weightscape.augment.augmented_batches for every diversity condition of the
paper, next to the training images/s of the default model, on the same machine and thread count.

Loading: Fashion-MNIST (28 x 28 gray, from the Debian package) -> 48 px, batch 64, num_workers 0 (augmentation in
the training process, as the default config runs). Training: pretrained EfficientNet-Lite0 + 10-class head at 48 px,
batch 64, Adam, forward + backward + step on pre-processed inputs. Goal: loading / training >= 2 for every condition,
so augmenting in the training process costs at most a third of the step time.

    python benchmarks/augment_throughput.py [--images 640] [--repeats 3] [--train-steps 6] [--threads 1]
                                            [--image-size 48] [--batch-size 64]
"""

from __future__ import annotations

import functools
import itertools
import statistics
import time

import torch

from _common import bare_loop, default_model_and_data, options, shuffled, timed
from weightscape.runtime import pin_threads


def paper_conditions() -> dict[str, list[dict]]:
    """name -> transforms of every diversity condition of the default grid (the schema's families.diversity)."""
    from weightscape.config import expand_conditions, section_with_defaults

    families = {"baseline": False, "diversity": section_with_defaults("families")["diversity"]}
    return {c["name"]: c["transforms"] for c in expand_conditions({"families": families})}


def loading_rate(epochs, n: int, repeats: int) -> list[float]:
    rates = []
    for r in range(repeats):
        start = time.perf_counter()
        for _ in epochs(torch.Generator().manual_seed(r)):
            pass
        rates.append(n / (time.perf_counter() - start))
    return rates


def training_rate(model, inputs, labels, batch_size: int, steps: int) -> float:
    """Images/s of the bare loop (_common.bare_loop, in the inputs' NCHW layout) over `steps` batches."""
    batches = list(itertools.islice(shuffled(inputs, labels, steps + 1, batch_size), steps + 1))
    train = functools.partial(bare_loop, model, lr=1e-4, memory_format=torch.contiguous_format)
    train(batches[:1])  # warm-up (allocator, kernels) outside the timing
    return sum(len(y) for _, y in batches[1:]) / timed(lambda: train(batches[1:]))[0]


def main() -> None:
    args = options(__doc__, images=640, repeats=3, train_steps=6, threads=1, image_size=48, batch_size=64)
    pin_threads(args.threads)

    from weightscape.augment import augmented_epochs
    from weightscape.inputs import to_model_inputs

    built, images, labels, spec = default_model_and_data(args.images, args.image_size)

    train = training_rate(built.module, to_model_inputs(images, spec), torch.as_tensor(labels), args.batch_size,
                          args.train_steps)
    print(f"Fashion-MNIST 28px gray -> {args.image_size}px, batch {args.batch_size}, {args.images} images, "
          f"num_workers 0, {args.threads} thread(s); loading: median of {args.repeats} epochs")
    print(f"training efficientnet_lite0 (Adam, fwd+bwd+step): {train:.1f} images/s ({args.train_steps} steps)")
    print(f"{'condition':<16}{'loading img/s':>14}{'loading/training':>18}   runs")
    worst = float("inf")
    for name, transforms in {"none": [], **paper_conditions()}.items():
        epochs = augmented_epochs(images, labels, spec, transforms, args.batch_size)
        rates = loading_rate(epochs, args.images, args.repeats)
        rate = statistics.median(rates)
        if name != "none":
            worst = min(worst, rate / train)
        print(f"{name:<16}{rate:>14.0f}{rate / train:>18.1f}   " + ", ".join(f"{v:.0f}" for v in rates))
    print(f"lowest loading/training ratio over the paper's conditions: {worst:.1f}   (goal >= 2)")


if __name__ == "__main__":
    main()
