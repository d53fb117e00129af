"""Seeded DDIM sampling of a class-conditional DDPM with classifier-free guidance, written as a canonical split."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
from diffusers import DDIMScheduler, UNet2DModel

from weightscape.synth.ddpm import noise_scheduler

log = logging.getLogger(__name__)


def ddim_scheduler(train_settings: dict, steps: int) -> DDIMScheduler:
    """The DDIM sampler of the DDPM's own noise schedule, with `steps` denoising steps."""
    scheduler = DDIMScheduler.from_config(noise_scheduler(train_settings).config)
    scheduler.set_timesteps(steps)
    return scheduler


@torch.no_grad()
def denoise(unet: UNet2DModel, scheduler: DDIMScheduler, labels: torch.Tensor, null_class: int,
            guidance_scale: float, eta: float, generator: torch.Generator) -> torch.Tensor:
    """One batch from pure noise to images in [-1, 1]: the standard diffusers DDIM loop plus guidance.

    With guidance_scale == 1 the unconditional pass is skipped (it would cancel out).
    """
    size = unet.config.sample_size
    x = torch.randn((len(labels), unet.config.in_channels, size, size), generator=generator).to(unet.device)
    guided = guidance_scale != 1.0
    classes = (torch.cat([labels, torch.full_like(labels, null_class)]) if guided else labels).to(unet.device)
    for t in scheduler.timesteps:
        eps = unet(torch.cat([x, x]) if guided else x, t, class_labels=classes).sample
        if guided:
            conditional, unconditional = eps.chunk(2)
            eps = unconditional + guidance_scale * (conditional - unconditional)
        x = scheduler.step(eps, t, x, eta=eta, generator=generator).prev_sample
    return x.clamp(-1, 1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW -> uint8 NHWC (the canonical image format)."""
    return x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def sample_ddpm(unet: UNet2DModel, info: dict, per_class: int, settings: dict,
                progress: Callable = lambda it: it) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of every class, class-balanced and ordered by class.

    Batch b is drawn from a generator seeded by (seed, b), so the images do not depend on how many batches ran
    before in this process.
    """
    num_classes = len(info["classes"])
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    scheduler = ddim_scheduler(info["train"], settings["steps"])
    unet.eval()
    images = []
    starts = range(0, len(labels), settings["batch_size"])
    for index in progress(starts):
        batch = labels[index:index + settings["batch_size"]]
        generator = torch.Generator().manual_seed(settings["seed"] * 1_000_003 + index)
        images.append(to_uint8(denoise(unet, scheduler, batch, num_classes, settings["guidance_scale"],
                                       settings["eta"], generator)))
    return np.concatenate(images), labels.numpy()
