"""Class-conditional DDPM on a canonical split: diffusers `UNet2DModel` with class embeddings + `DDPMScheduler`.

Classifier-free guidance is trained by replacing the class with an extra "null" class (index = num_classes) with
probability `class_dropout`. The weights kept are the EMA weights. Training is resumable: a checkpoint (model, EMA,
optimizer, lr schedule, step) is written every `checkpoint_every` steps, and every random draw of step s comes
from a generator seeded by (seed, s), so a resumed run draws exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from weightscape.data.canonical import load_split
from weightscape.io import atomic_path, file_sha256, read_json, write_json
from weightscape.settings import GENERATOR_TRAIN_EXECUTION_KEYS

log = logging.getLogger(__name__)

# A checkpoint resumes when everything but these matches: more steps continue a training, and execution keys
# (weightscape.settings) do not change the weights.
RESUMABLE_DIFFERENCES = ("steps",) + GENERATOR_TRAIN_EXECUTION_KEYS
WEIGHTS_FILE = "unet.safetensors"
INFO_FILE = "generator.json"


def build_unet(arch: dict, image_size: int, channels: int, num_classes: int) -> UNet2DModel:
    """The denoiser: plain ResNet down/up blocks (attention made CPU steps much slower), one extra class = null."""
    depth = len(arch["block_out_channels"])
    return UNet2DModel(sample_size=image_size, in_channels=channels, out_channels=channels,
                       block_out_channels=tuple(arch["block_out_channels"]),
                       layers_per_block=arch["layers_per_block"], norm_num_groups=arch["norm_num_groups"],
                       down_block_types=("DownBlock2D",) * depth, up_block_types=("UpBlock2D",) * depth,
                       num_class_embeds=num_classes + 1)


def noise_scheduler(settings: dict) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=settings["num_train_timesteps"], beta_schedule=settings["beta_schedule"])


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1], the range the DDPM is trained in."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _lr_lambda(warmup: int) -> Callable[[int], float]:
    return lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0


def _learned_settings(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in RESUMABLE_DIFFERENCES}


def train_ddpm(train_npz: str | Path, classes: list[str], settings: dict, out_dir: str | Path,
               checkpoint: str | Path, *, identity: dict | None = None,
               progress: Callable = lambda it: it, device: torch.device = torch.device("cpu")) -> dict:
    """Train (or resume) the generator on `train_npz`; write EMA weights + generator.json to `out_dir`.

    `settings` is the generator's `train` config slice; `identity` (e.g. dataset name) is recorded as is.
    Returns the generator.json content.
    """
    images, labels = load_split(train_npz)
    height, width, channels = images.shape[1:]
    if height != width:
        raise ValueError(f"{train_npz}: the DDPM needs square images, got {height}x{width}")
    num_classes = len(classes)
    data = to_unit_range(images)
    targets = torch.from_numpy(labels)

    with torch.random.fork_rng(devices=[]):  # the initial weights depend on the seed only
        torch.manual_seed(settings["seed"])
        unet = build_unet(settings["arch"], height, channels, num_classes)
    unet.to(device)
    ema = EMAModel(unet.parameters(), decay=settings["ema_decay"])
    optimizer = torch.optim.AdamW(unet.parameters(), lr=settings["lr"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(settings["warmup_steps"]))
    scheduler = noise_scheduler(settings)
    step, seconds = 0, 0.0
    checkpoint = Path(checkpoint)
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if _learned_settings(state["settings"]) == _learned_settings(settings) and state["step"] <= settings["steps"]:
            unet.load_state_dict(state["unet"])
            ema.load_state_dict(state["ema"])
            ema.to(device)
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            step, seconds = state["step"], state["seconds"]
            log.info("resuming from %s at step %d", checkpoint, step)
        else:
            log.warning("ignoring %s: written under other settings (or beyond %d steps)", checkpoint,
                        settings["steps"])

    def save_checkpoint(done: int) -> None:
        with atomic_path(checkpoint) as tmp:
            torch.save({"step": done, "seconds": seconds, "settings": settings, "unet": unet.state_dict(),
                        "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict()}, tmp)

    log.info("DDPM %s on %d images (%dx%dx%d, %d classes), %d parameters, steps %d -> %d", settings["arch"],
             len(data), height, width, channels, num_classes, sum(p.numel() for p in unet.parameters()), step,
             settings["steps"])
    unet.train()
    losses = []
    for step in progress(range(step, settings["steps"])):
        started = time.perf_counter()
        rng = step_generator(settings["seed"], step)
        batch = torch.randint(len(data), (settings["batch_size"],), generator=rng)
        x0, y = data[batch], targets[batch].clone()
        y[torch.rand(len(y), generator=rng) < settings["class_dropout"]] = num_classes
        noise = torch.randn(x0.shape, generator=rng)  # every draw on the CPU: the same on every device
        t = torch.randint(scheduler.config.num_train_timesteps, (len(x0),), generator=rng)
        x0, y, noise, t = x0.to(device), y.to(device), noise.to(device), t.to(device)
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(x0, noise, t), t, class_labels=y).sample,
                                            noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        ema.step(unet.parameters())
        losses.append(loss.item())
        seconds += time.perf_counter() - started
        if (step + 1) % settings["checkpoint_every"] == 0:
            log.info("step %d: loss %.4f (mean of the last %d), %.2f s/step", step + 1,
                     float(np.mean(losses[-settings["checkpoint_every"]:])), settings["checkpoint_every"],
                     seconds / (step + 1))
            save_checkpoint(step + 1)
    step = settings["steps"]
    save_checkpoint(step)

    ema.copy_to(unet.parameters())
    unet.cpu()
    out_dir = Path(out_dir)
    with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
        save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(tmp))
    info = {"kind": "ddpm", **(identity or {}), "classes": list(classes), "image_shape": [height, width, channels],
            "train": settings, "parameters": sum(p.numel() for p in unet.parameters()),
            "train_seconds": round(seconds, 1), "train_data_sha256": file_sha256(train_npz),
            "weights_sha256": file_sha256(out_dir / WEIGHTS_FILE)}
    write_json(out_dir / INFO_FILE, info)
    log.info("trained %d steps in %.0f s; weights %s", step, seconds, out_dir / WEIGHTS_FILE)
    return info


class GeneratorError(ValueError):
    """A generator directory that is missing, corrupt or made for other data; the message names the file."""


def load_ddpm(directory: str | Path) -> tuple[UNet2DModel, dict]:
    """(UNet with the EMA weights, generator.json) from a trained or shipped generator directory."""
    directory = Path(directory)
    info_path, weights_path = directory / INFO_FILE, directory / WEIGHTS_FILE
    for path in (info_path, weights_path):
        if not path.is_file():
            raise GeneratorError(f"{path}: generator file not found")
    info = read_json(info_path)
    if info.get("weights_sha256") and file_sha256(weights_path) != info["weights_sha256"]:
        raise GeneratorError(f"{weights_path}: checksum differs from the one in {info_path}")
    height, _, channels = info["image_shape"]
    unet = build_unet(info["train"]["arch"], height, channels, len(info["classes"]))
    try:
        unet.load_state_dict(load_file(str(weights_path)))
    except RuntimeError as exc:
        raise GeneratorError(f"{weights_path}: does not match its generator.json ({str(exc).splitlines()[0]})")
    return unet.eval(), info
