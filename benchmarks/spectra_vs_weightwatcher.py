"""Spectral engine speed: WeightWatcher 0.7.7 analyze() vs weightscape.spectra.analyze() vs the bare floor.

On the same random-init torchvision ResNet-50 and ViT-B/16, in one process, one BLAS thread:
  - WeightWatcher `analyze()` (default), and with `mp_fit=True`;
  - weightscape `analyze()` with the same options;
  - the floor: only the batched float64 eigen-decompositions (small Gram + eigvalsh) of the matrices weightscape
    analyses, with the matrices already extracted.
Goals: weightscape >= 10x faster than WeightWatcher default, <= 1.5x the floor; with MP fit >= 20x faster.

    python benchmarks/spectra_vs_weightwatcher.py [--models resnet50 vit_b_16] [--no-mp]
"""

from __future__ import annotations

import logging

import numpy as np

from _common import options, timed
from weightscape.runtime import pin_threads


def floor_seconds(model, split_qkv: bool) -> float:
    """Batched float64 Gram eigenvalues of every matrix weightscape analyses, grouped by shape."""
    from weightscape.spectra.layers import apply_filters, discover_layers

    records = discover_layers(model, split_qkv=split_qkv)
    apply_filters(records)
    by_shape: dict[tuple, list[np.ndarray]] = {}
    for record in records:
        if record.status == "pending":
            stack = record.matrices()
            by_shape.setdefault(stack.shape[1:], []).append(stack)
    stacks = [np.concatenate(group) for group in by_shape.values()]

    def decompose():
        for stack in stacks:
            small = stack if stack.shape[1] <= stack.shape[2] else stack.transpose(0, 2, 1)
            np.linalg.eigvalsh(small @ small.transpose(0, 2, 1))

    return timed(decompose)[0]


def main() -> None:
    args = options(__doc__, models=["resnet50", "vit_b_16"], no_mp=False)  # --no-mp: skip the (slow) mp_fit=True
    pin_threads(1)
    logging.disable(logging.WARNING)  # WeightWatcher logs every layer

    import torch
    import torchvision
    import weightwatcher

    from weightscape.spectra import analyze

    print("same layers = WeightWatcher's layer set (split_qkv=False); +qkv = weightscape's default, which also "
          "analyses the attention q/k/v matrices WeightWatcher skips")
    print(f"{'model':<10}{'options':<9}{'WW s':>8}{'ours s':>8}{'floor s':>9}{'WW/ours':>9}{'ours/floor':>11}"
          f"{'ours+qkv s':>12}{'floor+qkv s':>13}{'layers':>8}")
    for name in args.models:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval()
        floors = {split: floor_seconds(model, split) for split in (False, True)}
        for options in ([{}] if args.no_mp else [{}, {"mp_fit": True}]):
            label = ",".join(options) or "default"
            ww_seconds, ww_table = timed(lambda: weightwatcher.WeightWatcher(model=model).analyze(**options))
            ours_seconds, ours_table = timed(lambda: analyze(model, split_qkv=False, **options))
            qkv_seconds, qkv_table = timed(lambda: analyze(model, **options))
            print(f"{name:<10}{label:<9}{ww_seconds:>8.2f}{ours_seconds:>8.2f}{floors[False]:>9.2f}"
                  f"{ww_seconds / ours_seconds:>9.1f}{ours_seconds / floors[False]:>11.2f}"
                  f"{qkv_seconds:>12.2f}{floors[True]:>13.2f}"
                  f"{f'{len(ww_table)}/{len(qkv_table)}':>8}", flush=True)
    print("goals: WW/ours >= 10 (default) and >= 20 (mp_fit); ours/floor <= 1.5 (default). The floor itself is "
          "the limit of any exact float64 method.")


if __name__ == "__main__":
    main()
