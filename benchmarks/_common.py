"""Set-up shared by the benchmark scripts: the default model and a seeded sample of real Fashion-MNIST images."""

from __future__ import annotations

import argparse

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
