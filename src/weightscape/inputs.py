"""How raw images reach a model: the input spec (resolution + the model's own normalization), the one
resize/normalize path shared by clean and augmented data, and the seeded batch order of an epoch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF


@dataclass(frozen=True)
class InputSpec:
    """How raw uint8 images become model inputs: resolution and the model's own normalization."""
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_info(cls, info: dict) -> "InputSpec":
        """The spec recorded in a checkpoint's model.json (resolution + the model's normalization)."""
        return cls(info["image_size"], tuple(info["mean"]), tuple(info["std"]))


def to_model_inputs(images: np.ndarray | torch.Tensor, spec: InputSpec, chunk: int = 2048) -> torch.Tensor:
    """uint8 N x H x W x C (C = 1 or 3) -> normalized float32 N x 3 x S x S (gray is repeated to 3 channels)."""
    images = torch.as_tensor(images)
    out = torch.empty(len(images), 3, spec.image_size, spec.image_size)
    for start in range(0, len(images), chunk):  # chunks bound the float copy of a large set
        out[start:start + chunk] = model_ready(images[start:start + chunk].permute(0, 3, 1, 2), spec)
    return out


def model_ready(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 (or float in [0, 1]) ... x C x H x W, C = 1 or 3 -> normalized float32 ... x 3 x S x S.

    Gray is repeated to 3 channels, scaled to [0, 1], resized with antialias unless already S x S, normalized with
    spec.mean/std, all with v2 functionals: the one code path of clean (:func:`to_model_inputs`) and augmented
    (weightscape.augment) data, so every condition and the test set share one normalization.
    """
    images = TF.to_dtype(TF.grayscale_to_rgb(images), torch.float32, scale=True)
    size = spec.image_size
    if images.shape[-1] != size or images.shape[-2] != size:
        images = TF.resize(images, [size, size], antialias=True)
    return TF.normalize(images, list(spec.mean), list(spec.std))


def batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterable[torch.Tensor]:
    """Index batches of one epoch: shuffled by `generator`, in order when it is None. The last batch may be short."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return order.split(batch_size)
