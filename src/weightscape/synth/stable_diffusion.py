"""Text-to-image synthetic data through diffusers' StableDiffusionPipeline (online / GPU users).

The pipeline comes from a hub id (needs the internet) or a local directory saved with `save_pretrained`; nothing
here is specific to a checkpoint, so the offline tests run the same code on a tiny randomly initialized pipeline.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
from PIL import Image

log = logging.getLogger(__name__)


def load_pipeline(source: str, device: torch.device):
    """A StableDiffusionPipeline from a hub id or a local directory; the safety checker is not loaded (it would
    black out images and needs its own download)."""
    from diffusers import StableDiffusionPipeline

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    pipeline = StableDiffusionPipeline.from_pretrained(source, dtype=dtype, safety_checker=None,
                                                       requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def prompts(template: str, classes: list[str]) -> list[str]:
    """One prompt per class: "a photo of a {class}" -> "a photo of a sneaker" (underscores read as spaces)."""
    return [template.format(**{"class": name.replace("_", " ")}) for name in classes]


def fit_to_dataset(images: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """uint8 NHWC RGB generations -> the real data's size and channel count (PIL resize, luminance for gray)."""
    out = []
    for image in images:
        picture = Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC)
        if channels == 1:
            picture = picture.convert("L")
        out.append(np.asarray(picture).reshape(height, width, channels))
    return np.stack(out)


def sample_stable_diffusion(pipeline, classes: list[str], per_class: int, template: str, resolution: int,
                            settings: dict, image_shape: tuple[int, int, int],
                            progress: Callable = lambda it: it) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of every class from its prompt, batch b seeded by (seed, b), fitted to `image_shape`."""
    texts = prompts(template, classes)
    labels = np.repeat(np.arange(len(classes)), per_class)
    batches = []
    for start in progress(range(0, len(labels), settings["batch_size"])):
        batch = labels[start:start + settings["batch_size"]]
        generator = torch.Generator(pipeline.device).manual_seed(settings["seed"] * 1_000_003 + start)
        result = pipeline([texts[i] for i in batch], height=resolution, width=resolution,
                          num_inference_steps=settings["steps"], guidance_scale=settings["guidance_scale"],
                          eta=settings["eta"], generator=generator, output_type="np")
        generated = (np.clip(result.images, 0, 1) * 255).round().astype(np.uint8)
        batches.append(fit_to_dataset(generated, *image_shape))
    return np.concatenate(batches), labels.astype(np.int64)
