"""Synthetic data: mixing arithmetic, DDPM training/resume/sampling, the Stable Diffusion path on a tiny offline
pipeline, fidelity measures, and the shipped generator."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from tiny_stable_diffusion import save_tiny_pipeline
from weightscape.data.canonical import load_split, save_split
from weightscape.io import file_sha256
from weightscape.synth.ddpm import GeneratorError, load_ddpm, train_ddpm
from weightscape.synth.fidelity import class_consistency, frechet_distance
from weightscape.synth.generate import synthesize
from weightscape.synth.mixing import mix_counts, mix_training_set
from weightscape.synth.sampling import ddim_scheduler, denoise, sample_ddpm

CLASSES = ["zero", "one", "two"]


# ------------------------------------------------------------------------------------------------------ mixing
@pytest.mark.parametrize("scheme, p, n, expected", [
    ("replace", 0.1, 100, (10, 90)), ("replace", 0.5, 100, (50, 50)), ("replace", 0.9, 100, (90, 10)),
    ("replace", 0.3, 10, (3, 7)), ("replace", 0.5, 5, (3, 2)), ("replace", 1.0, 7, (7, 0)),
    ("add", 0.1, 100, (100, 10)), ("add", 0.5, 100, (100, 50)), ("add", 0.9, 100, (100, 90)),
    ("add", 0.5, 5, (5, 3)), ("add", 0.0, 5, (5, 0)),
])
def test_mix_counts_follow_the_two_schemes(scheme, p, n, expected):
    assert mix_counts(scheme, p, n) == expected


def _labelled_images(labels, value_offset):
    """Images whose single pixel value identifies them: offset + index."""
    images = (np.arange(len(labels)) + value_offset).astype(np.uint8).reshape(-1, 1, 1, 1)
    return np.repeat(np.repeat(images, 4, 1), 4, 2), np.asarray(labels, np.int64)


def test_mix_training_set_is_class_balanced_seeded_and_keeps_sources_apart():
    real, real_labels = _labelled_images(np.repeat([0, 1, 2], 10), 0)  # values 0..29
    synth, synth_labels = _labelled_images(np.repeat([0, 1, 2], 8), 100)  # values 100..123
    images, labels, is_synthetic = mix_training_set(real, real_labels, synth, synth_labels, "replace", 0.3, seed=1)
    assert len(images) == 30 and np.bincount(labels).tolist() == [10, 10, 10]
    assert np.bincount(labels[is_synthetic]).tolist() == [7, 7, 7]
    values = images[:, 0, 0, 0].astype(int)
    assert (values[is_synthetic] >= 100).all() and (values[~is_synthetic] < 100).all()
    # each image keeps its own label, and nothing is drawn twice
    assert (synth_labels[values[is_synthetic] - 100] == labels[is_synthetic]).all()
    assert (real_labels[values[~is_synthetic]] == labels[~is_synthetic]).all()
    assert len(set(values)) == 30
    again = mix_training_set(real, real_labels, synth, synth_labels, "replace", 0.3, seed=1)[0]
    other = mix_training_set(real, real_labels, synth, synth_labels, "replace", 0.3, seed=2)[0]
    assert np.array_equal(images, again) and not np.array_equal(images, other)

    images, labels, is_synthetic = mix_training_set(real, real_labels, synth, synth_labels, "add", 0.5, seed=0)
    assert len(images) == 45 and (~is_synthetic).sum() == 30 and np.bincount(labels[is_synthetic]).tolist() == [5] * 3
    assert sorted(images[~is_synthetic][:, 0, 0, 0].tolist()) == list(range(30))  # add keeps every real image


def test_mix_training_set_errors_name_the_shortfall():
    real, real_labels = _labelled_images(np.repeat([0, 1], 10), 0)
    synth, synth_labels = _labelled_images(np.repeat([0, 1], 3), 100)
    with pytest.raises(ValueError, match="needs 5 synthetic images, the generator made 3"):
        mix_training_set(real, real_labels, synth, synth_labels, "add", 0.5, seed=0)
    with pytest.raises(ValueError, match="must match"):
        mix_training_set(real, real_labels, synth[:, :2], synth_labels, "add", 0.1, seed=0)


# -------------------------------------------------------------------------------------------------------- DDPM
TINY_TRAIN = {"arch": {"block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4}, "steps": 6,
              "batch_size": 8, "lr": 1e-3, "warmup_steps": 2, "ema_decay": 0.9, "class_dropout": 0.2,
              "num_train_timesteps": 100, "beta_schedule": "squaredcos_cap_v2", "checkpoint_every": 2, "seed": 3,
              "threads": 1}
SAMPLE = {"steps": 4, "guidance_scale": 2.0, "eta": 0.0, "batch_size": 5, "seed": 0, "threads": 1}


@pytest.fixture(scope="module")
def real_split(tmp_path_factory, fashion_root):
    """24 real Fashion-MNIST training images of 3 classes, cropped to 16 x 16 to keep the UNet tiny."""
    from weightscape.data.sources import SOURCES

    raw = SOURCES["fashion_mnist"].load({"root": str(fashion_root)})
    images, labels = raw.train_images, raw.train_labels
    keep = np.concatenate([np.flatnonzero(labels == c)[:8] for c in range(3)])
    path = tmp_path_factory.mktemp("real") / "train.npz"
    save_split(path, images[keep][:, 6:22, 6:22], labels[keep])
    return path


def _weights(directory):
    from safetensors.torch import load_file

    return load_file(str(Path(directory) / "unet.safetensors"))


def test_ddpm_training_resumes_exactly_from_a_checkpoint(real_split, tmp_path):
    straight = train_ddpm(real_split, CLASSES, TINY_TRAIN, tmp_path / "straight", tmp_path / "straight.pt")
    # "killed" after the checkpoint of step 4, then run again with the full step count
    train_ddpm(real_split, CLASSES, {**TINY_TRAIN, "steps": 4}, tmp_path / "resumed", tmp_path / "resumed.pt")
    assert torch.load(tmp_path / "resumed.pt", weights_only=False)["step"] == 4
    resumed = train_ddpm(real_split, CLASSES, TINY_TRAIN, tmp_path / "resumed", tmp_path / "resumed.pt")
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight["weights_sha256"] == resumed["weights_sha256"]
    assert straight["image_shape"] == [16, 16, 1] and straight["classes"] == CLASSES
    assert straight["train_data_sha256"] == file_sha256(real_split)


def test_ddpm_checkpoint_of_other_settings_is_not_resumed(real_split, tmp_path):
    train_ddpm(real_split, CLASSES, {**TINY_TRAIN, "lr": 5e-3}, tmp_path / "other", tmp_path / "ck.pt")
    fresh = train_ddpm(real_split, CLASSES, TINY_TRAIN, tmp_path / "fresh", tmp_path / "fresh.pt")
    reused = train_ddpm(real_split, CLASSES, TINY_TRAIN, tmp_path / "other", tmp_path / "ck.pt")
    assert fresh["weights_sha256"] == reused["weights_sha256"]


@pytest.fixture(scope="module")
def tiny_generator(real_split, tmp_path_factory):
    directory = tmp_path_factory.mktemp("generator")
    train_ddpm(real_split, CLASSES, TINY_TRAIN, directory, directory / "checkpoint.pt", identity={"dataset": "tiny"})
    return directory


def test_sampling_is_seeded_class_balanced_and_canonical(tiny_generator):
    unet, info = load_ddpm(tiny_generator)
    images, labels = sample_ddpm(unet, info, 3, SAMPLE)
    assert images.shape == (9, 16, 16, 1) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    again, _ = sample_ddpm(unet, info, 3, SAMPLE)
    other, _ = sample_ddpm(unet, info, 3, {**SAMPLE, "seed": 1})
    unguided, _ = sample_ddpm(unet, info, 3, {**SAMPLE, "guidance_scale": 1.0})
    assert np.array_equal(images, again) and not np.array_equal(images, other)
    assert not np.array_equal(images, unguided)


def test_denoise_without_guidance_is_the_plain_diffusers_loop(tiny_generator):
    unet, info = load_ddpm(tiny_generator)
    labels = torch.tensor([0, 2, 1])
    ours = denoise(unet, ddim_scheduler(info["train"], 5), labels, 3, 1.0, 0.0, torch.Generator().manual_seed(7))
    scheduler = ddim_scheduler(info["train"], 5)
    x = torch.randn((3, 1, 16, 16), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t, class_labels=labels).sample, t, x).prev_sample
    assert torch.allclose(ours, x.clamp(-1, 1), atol=1e-6)


def test_load_ddpm_errors_name_the_file(tiny_generator, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_generator, broken)
    (broken / "unet.safetensors").write_bytes((broken / "unet.safetensors").read_bytes()[:-8] + b"12345678")
    with pytest.raises(GeneratorError, match="unet.safetensors: checksum differs"):
        load_ddpm(broken)
    (broken / "generator.json").unlink()
    with pytest.raises(GeneratorError, match="generator.json: generator file not found"):
        load_ddpm(broken)


def _generator(**fields):
    """A generator's settings object with the fields a test sets (the rest as the schema's defaults would be)."""
    from weightscape.settings import Generator

    return Generator(**{"weights": None, "prompt": "a photo of a {class}", "resolution": 512, "train": {}, **fields})


def test_synthesize_writes_canonical_images_and_refuses_other_data(tiny_generator, real_split, tmp_path):
    generator = _generator(name="tiny", kind="ddpm", per_class=2, sample=SAMPLE)
    info = synthesize(generator, str(tiny_generator), CLASSES, real_split, device=torch.device("cpu"),
                      out_images=tmp_path / "train.npz", out_info=tmp_path / "generator.json")
    images, labels = load_split(tmp_path / "train.npz")
    assert images.shape == (6, 16, 16, 1) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert info["generator"]["weights_sha256"] == file_sha256(tiny_generator / "unet.safetensors")
    assert json.loads((tmp_path / "generator.json").read_text())["images"] == 6
    with pytest.raises(GeneratorError, match="trained on classes"):
        synthesize(generator, str(tiny_generator), ["a", "b", "c"], real_split, device=torch.device("cpu"),
                   out_images=tmp_path / "x.npz", out_info=tmp_path / "x.json")
    bigger = tmp_path / "bigger.npz"
    save_split(bigger, np.zeros((3, 28, 28, 1), np.uint8), np.arange(3))
    with pytest.raises(GeneratorError, match=r"makes \(16, 16, 1\) images"):
        synthesize(generator, str(tiny_generator), CLASSES, bigger, device=torch.device("cpu"),
                   out_images=tmp_path / "y.npz", out_info=tmp_path / "y.json")
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "y.npz").exists()


# -------------------------------------------------------------------------------------------- Stable Diffusion
def test_stable_diffusion_path_loads_a_saved_pipeline_by_path_and_samples(tmp_path, real_split):
    pipeline_dir = save_tiny_pipeline(tmp_path)
    generator = _generator(name="sd", kind="stable_diffusion", per_class=2, prompt="a photo of a {class}",
                           resolution=16, sample={**SAMPLE, "batch_size": 4})
    info = synthesize(generator, str(pipeline_dir), CLASSES, real_split, device=torch.device("cpu"),
                      out_images=tmp_path / "sd.npz", out_info=tmp_path / "sd.json")
    images, labels = load_split(tmp_path / "sd.npz")
    assert images.shape == (6, 16, 16, 1) and images.dtype == np.uint8  # fitted to the real data's shape
    assert labels.tolist() == [0, 0, 1, 1, 2, 2] and images.std() > 0
    assert info["pipeline"] == str(pipeline_dir) and info["prompt"] == "a photo of a {class}"
    synthesize(generator, str(pipeline_dir), CLASSES, real_split, device=torch.device("cpu"),
               out_images=tmp_path / "again.npz", out_info=tmp_path / "again.json")
    assert np.array_equal(images, load_split(tmp_path / "again.npz")[0])


def test_prompts_fill_the_class_name():
    from weightscape.synth.stable_diffusion import prompts

    assert prompts("a photo of a {class}", ["ankle_boot", "T-shirt/top"]) == ["a photo of a ankle boot",
                                                                               "a photo of a T-shirt/top"]


# ----------------------------------------------------------------------------------------------------- fidelity
def test_frechet_distance_matches_the_closed_form():
    a = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])  # mean 0, unbiased covariance 2/3 I
    b = 3 * a + 1  # mean (1, 1), covariance 6 I
    # |mu|^2 + sum_i (sqrt(2/3) - sqrt(6))^2 = 2 + 2 * (2/3 + 6 - 2 * 2)
    assert math.isclose(frechet_distance(a, b), 2 + 2 * (2 / 3 + 6 - 4), rel_tol=1e-9)
    assert abs(frechet_distance(a, a)) < 1e-9


def test_class_consistency_per_class_and_overall():
    result = class_consistency(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), ["a", "b", "c"])
    assert result["overall"] == pytest.approx(4 / 6)
    assert result["per_class"] == {"a": 0.5, "b": 0.5, "c": 1.0}


# ------------------------------------------------------------------------------------------- shipped generator
SHIPPED = REPO / "resources" / "generators" / "fashion_mnist-ddpm"


def test_shipped_generator_loads_matches_its_checksum_and_the_default_data(fashion_root):
    from weightscape.config import load_config

    unet, info = load_ddpm(SHIPPED)  # verifies the weights' sha256 against generator.json
    assert info["weights_sha256"] == file_sha256(SHIPPED / "unet.safetensors")
    assert (SHIPPED / "unet.safetensors").stat().st_size <= 20_000_000
    assert info["dataset"] == "fashion_mnist" and info["image_shape"] == [28, 28, 1]
    assert len(info["classes"]) == 10 and info["classes"][0] == "T-shirt/top"
    default = load_config(REPO / "config.yaml")
    assert default["generators"][0]["weights"] == "resources/generators/fashion_mnist-ddpm"
    assert info["train"] == default["generators"][0]["train"]  # shipped = made with the default settings
