"""What the benchmark scripts share: the default model on a seeded sample of real Fashion-MNIST images, the bare
training loop every floor is measured with, a finished run's settings and the bare cost of an augmentation."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)


def default_model_and_data(images: int, image_size: int):
    """(built EfficientNet-Lite0 with a seeded 10-class head, uint8 images, labels, its InputSpec)."""
    from weightscape.data.sources import SOURCES
    from weightscape.inputs import InputSpec
    from weightscape.models import build_model

    raw = SOURCES["fashion_mnist"].load({})
    pick = np.random.default_rng(0).choice(len(raw.train_labels), images, replace=False)
    built = build_model("efficientnet_lite0", 10, weights="pretrained", head_seed=0)
    return built, raw.train_images[pick], raw.train_labels[pick], InputSpec(image_size, built.mean, built.std)


def bare_loop(model, inputs, labels, epochs, batch_size, lr, seed):
    """The floor of training: what anyone would write by hand (Adam, cross-entropy), nothing else."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    order_rng = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(inputs), generator=order_rng).split(batch_size):
            loss = F.cross_entropy(model(inputs[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def run_settings(workdir, config_files):
    """weightscape Settings of a finished run, its config merged as Snakemake merges it: WORKDIR/config.yaml (the
    Snakefile's `configfile:`, skipped when absent) updated with each of the run's --configfile files."""
    import yaml
    from snakemake.utils import update_config

    from weightscape.config import validated_settings

    default = Path(workdir) / "config.yaml"
    config = (yaml.safe_load(default.read_text()) or {}) if default.is_file() else {}
    for path in config_files:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    return validated_settings(config, base_dir=Path(workdir))


def augmentation_seconds(workdir, run: str, transforms, images: int, epochs: int, batch_size: int) -> float | None:
    """The floor of a fine-tune's augmentation: seconds a bare loop takes to put `images` training images of the
    run's dataset (its real training split, repeated to that count for a larger mixed set) through the condition's
    v2 pipeline one by one and make each batch model-ready, for every epoch. None without transforms. `run`: the
    run as a weightscape.layout.RUN path. The draws are the experiment, so they are part of its work."""
    import json
    import time

    import torch

    from weightscape import layout
    from weightscape.augment import build_pipeline
    from weightscape.data.canonical import load_split
    from weightscape.inputs import InputSpec, model_ready

    if not transforms:
        return None
    item = layout.fields(layout.RUN, run)
    train, _ = load_split(Path(workdir) / layout.DATA.format(**item) / "train.npz")
    info = json.loads((Path(workdir) / layout.REFERENCES.format(**item) / "model.json").read_text())
    spec, pipeline = InputSpec.from_info(info), build_pipeline(list(transforms))
    train = torch.as_tensor(np.resize(train, (images, *train.shape[1:]))).permute(0, 3, 1, 2).contiguous()
    start = time.perf_counter()
    for _ in range(epochs):
        for index in torch.randperm(len(train)).split(batch_size):
            model_ready(torch.stack([pipeline(train[i]) for i in index]), spec)
    return time.perf_counter() - start
