"""Rule synthesize: N images per class from a configured generator, in the canonical format of the real data, with
the generator's identity written next to them. One function per generator kind (registry `SYNTHESIZERS`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from weightscape.data.canonical import load_split, save_split
from weightscape.io import write_json
from weightscape.settings import Generator

log = logging.getLogger(__name__)


def _ddpm(generator: Generator, directory: str, classes: list[str], image_shape: tuple, device, progress):
    from weightscape.synth.ddpm import GeneratorError, load_ddpm
    from weightscape.synth.sampling import sample_ddpm

    unet, info = load_ddpm(directory)
    if info["classes"] != classes:
        raise GeneratorError(f"{directory}/generator.json: trained on classes {info['classes']}, the dataset has "
                             f"{classes}")
    if tuple(info["image_shape"]) != tuple(image_shape):
        raise GeneratorError(f"{directory}/generator.json: makes {tuple(info['image_shape'])} images (H, W, C), "
                             f"the dataset's are {tuple(image_shape)}")
    images, labels = sample_ddpm(unet.to(device), info, generator.per_class, generator.sample, progress)
    return images, labels, {"generator": info}


def _stable_diffusion(generator: Generator, directory: str, classes: list[str], image_shape: tuple, device, progress):
    from weightscape.synth.stable_diffusion import load_pipeline, sample_stable_diffusion

    pipeline = load_pipeline(directory, device)
    images, labels = sample_stable_diffusion(pipeline, classes, generator.per_class, generator.prompt,
                                             generator.resolution, generator.sample, image_shape, progress)
    return images, labels, {"pipeline": directory, "prompt": generator.prompt, "resolution": generator.resolution}


SYNTHESIZERS: dict[str, Callable] = {"ddpm": _ddpm, "stable_diffusion": _stable_diffusion}


def synthesize(generator: Generator, directory: str, classes: list[str], real_train: str | Path, *, device,
               out_images: str | Path, out_info: str | Path, progress: Callable = lambda it: it) -> dict:
    """Generate `generator.per_class` images per class shaped like `real_train`'s; write them and their identity."""
    real_images, _ = load_split(real_train)
    started = time.perf_counter()
    images, labels, identity = SYNTHESIZERS[generator.kind](generator, directory, classes, real_images.shape[1:],
                                                            device, progress)
    seconds = time.perf_counter() - started
    save_split(out_images, images, labels)
    info = {"name": generator.name, "kind": generator.kind, "source": str(directory),
            "per_class": generator.per_class, "sample": generator.sample, "images": int(len(labels)),
            "seconds": round(seconds, 1), "images_per_second": round(len(labels) / seconds, 3), **identity}
    write_json(out_info, info)
    log.info("%s: %d images (%d per class) in %.0f s (%.2f images/s)", generator.name, len(labels),
             generator.per_class, seconds, len(labels) / seconds)
    return info
