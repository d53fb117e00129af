"""What the benchmark scripts share: their command line, the default model on a seeded sample of real Fashion-MNIST
images, the bare training loop every floor is measured with, alternating timed runs, a finished run's settings and
the bare cost of an augmentation."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def options(doc: str, **defaults) -> argparse.Namespace:
    """The command line of a script documented by `doc`: --NAME for each default (underscores as dashes), taking a
    value of the default's type (None: a string); a False default makes a flag, a list one or more values."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in defaults.items():
        flag = "--" + name.replace("_", "-")
        if default is False:
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, default=default, **({"nargs": "+"} if isinstance(default, list) else
                                                          {"type": str if default is None else type(default)}))
    return parser.parse_args()


def default_model_and_data(images: int, image_size: int):
    """(built EfficientNet-Lite0 with a seeded 10-class head, uint8 images, labels, its InputSpec)."""
    from weightscape.data.sources import SOURCES
    from weightscape.inputs import InputSpec
    from weightscape.models import build_model

    raw = SOURCES["fashion_mnist"].load({})
    pick = np.random.default_rng(0).choice(len(raw.train_labels), images, replace=False)
    built = build_model("efficientnet_lite0", 10, weights="pretrained", head_seed=0)
    return built, raw.train_images[pick], raw.train_labels[pick], InputSpec(image_size, built.mean, built.std)


def shuffled(inputs, labels, epochs: int, batch_size: int, seed: int = 0):
    """The batches of `epochs` passes over the data, each pass in a new seeded order."""
    import torch

    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(inputs), generator=order).split(batch_size):
            yield inputs[index], labels[index]


def bare_loop(model, batches, lr: float, device=None, memory_format=None) -> float:
    """The floor of training: what anyone would write by hand (Adam, cross-entropy, bf16 autocast on CUDA), nothing
    else, on `device` (default: the CPU) with model and inputs in `memory_format` (default channels_last); the last
    loss."""
    import torch
    import torch.nn.functional as F

    device, memory_format = device or torch.device("cpu"), memory_format or torch.channels_last
    model.to(device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    loss = torch.zeros(())
    for x, y in batches:
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        with autocast:
            loss = F.cross_entropy(model(x).float(), y.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def timed(run, device=None) -> tuple[float, object]:
    """(seconds, result) of run(); on a CUDA device, with the work queued before and by it finished."""
    import torch

    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else lambda _device: None
    sync(device)
    start = time.perf_counter()
    result = run()
    sync(device)
    return time.perf_counter() - start, result


def alternating(runners: dict, repeats: int, fresh=lambda: None) -> tuple[dict, dict]:
    """Every runner called on fresh() (made outside the timing) `repeats` times, in turns so that machine noise hits
    all alike: (name -> seconds of each call, name -> what its last call returned)."""
    seconds, results = {name: [] for name in runners}, {}
    for _ in range(repeats):
        for name, run in runners.items():
            argument = fresh()
            elapsed, results[name] = timed(lambda: run(argument))
            seconds[name].append(elapsed)
    return seconds, results


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
