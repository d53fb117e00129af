"""Augmentation registry, spec checks, pipelines and the seeded augmented data path, on real images
(Fashion-MNIST from the Debian package, skimage photos)."""

import numpy as np
import pytest
import torch

from weightscape.augment import (FLOAT_ONLY, TRANSFORMS, AugmentedImages, augmented_batches, augmented_epochs,
                                 build_pipeline, check_transforms)
from weightscape.inputs import InputSpec, batches, model_ready, to_model_inputs

AUTOAUGMENT = {"name": "autoaugment", "args": {"policy": "imagenet"}}
HFLIP, VFLIP = {"name": "hflip", "args": {"p": 0.5}}, {"name": "vflip", "args": {"p": 0.3}}
ELASTIC = {"name": "elastic", "args": {"alpha": 40.0, "sigma": 6.0}}


def noise(std):
    return {"name": "gaussian_noise", "args": {"std": std}}


PAPER = {  # the paper's diversity conditions
    "autoaugment": [AUTOAUGMENT], "randaugment": [{"name": "randaugment"}], "augmix": [{"name": "augmix"}],
    "trivialaugment": [{"name": "trivialaugment"}],
    "noise_0.01": [noise(0.01)], "noise_0.03": [noise(0.03)], "noise_0.05": [noise(0.05)],
    "auto1": [AUTOAUGMENT, noise(0.05)], "auto2": [AUTOAUGMENT, noise(0.05), HFLIP, VFLIP],
    "auto3": [AUTOAUGMENT, HFLIP, ELASTIC, noise(0.05)],
}
LITE0 = InputSpec(48, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
CLIP = InputSpec(48, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
# Arguments that make each registry transform act on every call (or on most calls, for the random policies).
ACTIVE_ARGS = {"hflip": {"p": 1.0}, "vflip": {"p": 1.0}, "gaussian_noise": {"std": 0.05},
               "elastic": {"alpha": 40.0, "sigma": 6.0}, "color_jitter": {"brightness": 0.5, "hue": 0.2},
               "random_crop": {"size": 64, "padding": 8}, "random_resized_crop": {"size": 64},
               "random_rotation": {"degrees": 30}, "random_erasing": {"p": 1.0}}


@pytest.fixture(scope="module")
def fashion(fashion_root):
    from weightscape.data.sources import SOURCES

    raw = SOURCES["fashion_mnist"].load({})
    return raw.train_images[:32], raw.train_labels[:32]


@pytest.fixture(scope="module")
def photos():
    import skimage.data

    images = np.stack([skimage.data.astronaut()[::8, ::8], skimage.data.chelsea()[:256:4, 100:356:4]])
    return np.ascontiguousarray(images)  # 2 x 64 x 64 x 3 uint8


def chw(image):
    return torch.as_tensor(image).permute(2, 0, 1).contiguous()


def epoch(images, labels, spec, transforms, seed, batch_size=8, **kw):
    xs, ys = zip(*augmented_batches(images, labels, spec, transforms, batch_size, torch.Generator().manual_seed(seed),
                                    **kw))
    return torch.cat(xs), torch.cat(ys)


def order_of(n, batch_size, seed):
    return torch.cat(list(batches(n, batch_size, torch.Generator().manual_seed(seed))))


def test_registry_holds_the_paper_transforms_with_v2_argument_names():
    assert {"autoaugment", "randaugment", "augmix", "trivialaugment", "gaussian_noise", "hflip", "vflip",
            "elastic"} <= set(TRANSFORMS)
    check_transforms([{"name": "randaugment", "args": {"num_ops": 3, "magnitude": 5}},
                      {"name": "augmix", "args": {"severity": 2, "mixture_width": 2}},
                      {"name": "autoaugment", "args": {"policy": "cifar10"}}, {"name": "trivialaugment"}])


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_registry_transform_builds_and_changes_an_image(name, photos):
    pipeline = build_pipeline([{"name": name, "args": ACTIVE_ARGS.get(name, {})}])
    image = chw(photos[0])
    clean = image.float() / 255
    torch.manual_seed(0)
    changed = 0
    for _ in range(8):
        out = pipeline(image)
        assert out.dtype == torch.float32 and out.shape == clean.shape
        assert 0 <= out.min() and out.max() <= 1
        changed += bool((out - clean).abs().max() > 1e-6)
    assert changed >= 4, f"{name} changed the image in only {changed} of 8 draws"
    assert torch.equal(image, chw(photos[0])), "the input image must not be modified in place"


def test_uint8_ops_run_on_uint8_and_the_float_conversion_comes_before_the_noise(photos):
    names = lambda spec: [type(t).__name__ for t in build_pipeline(spec).transforms]  # noqa: E731
    assert names(PAPER["auto1"]) == ["AutoAugment", "ToDtype", "GaussianNoise"]
    assert names(PAPER["auto2"]) == ["AutoAugment", "ToDtype", "GaussianNoise", "RandomHorizontalFlip",
                                     "RandomVerticalFlip"]
    assert names(PAPER["auto3"]) == ["AutoAugment", "RandomHorizontalFlip", "ElasticTransform", "ToDtype",
                                     "GaussianNoise"]
    assert names([]) == ["ToDtype"]
    assert FLOAT_ONLY == {"gaussian_noise"}
    # behaviour: without noise the output is on the uint8 grid (AutoAugment ran on uint8, converted once at the end)
    torch.manual_seed(0)
    out = build_pipeline(PAPER["auto3"][:3])(chw(photos[1]))
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-3)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_conditions_build_and_give_model_ready_images(name, fashion):
    images, labels = fashion
    dataset = AugmentedImages(images[:4], labels[:4], LITE0, PAPER[name])
    x, y = dataset[0]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and int(y) == int(labels[0])
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", sorted(PAPER))
def test_a_batch_made_model_ready_at_once_equals_one_image_at_a_time(name, fashion):
    """AugmentedImages.ready (what every training batch and diversity view goes through) runs model_ready once on
    the stacked batch: bit for bit what the per-image path gives, for every paper condition."""
    images, labels = fashion
    dataset = AugmentedImages(images, labels, LITE0, PAPER[name])
    torch.manual_seed(5)
    one_at_a_time = torch.stack([dataset.image(i) for i in range(len(images))])
    torch.manual_seed(5)
    at_once = dataset.ready([dataset.augmented(i) for i in range(len(images))])
    assert torch.equal(at_once, one_at_a_time)


def test_views_of_different_sizes_are_made_model_ready_one_by_one(fashion):
    images, labels = fashion
    dataset = AugmentedImages(images, labels, LITE0, [])
    views = [torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(1)),
             torch.rand(1, 40, 36, generator=torch.Generator().manual_seed(2))]
    batch = dataset.ready(views)
    assert batch.shape == (2, 3, 48, 48)
    assert all(torch.equal(batch[i], model_ready(view, LITE0)) for i, view in enumerate(views))


@pytest.mark.parametrize("std", [0.01, 0.03, 0.05])
def test_noise_has_the_requested_std_and_is_clamped(std):
    gray = torch.full((3, 256, 256), 128, dtype=torch.uint8)
    torch.manual_seed(0)
    delta = build_pipeline([noise(std)])(gray) - 128 / 255
    assert float(delta.std()) == pytest.approx(std, rel=0.02)  # on uint8 the noise would be truncated: ~15% less
    assert abs(float(delta.mean())) < 4 * std / 256 / 3 ** 0.5
    half = torch.zeros(3, 256, 256, dtype=torch.uint8)
    half[:, :, 128:] = 255
    out = build_pipeline([noise(std)])(half)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    assert float((out[:, :, :128] == 0).float().mean()) == pytest.approx(0.5, abs=0.02)  # clamped, not folded


@pytest.mark.parametrize("spec, where, fragment", [
    ([{"name": "autoaugmnet"}], "transforms[0].name", "did you mean 'autoaugment'"),
    ([HFLIP, {"name": "autoaugment", "args": {"polcy": "imagenet"}}], "transforms[1].args.polcy",
     "allowed: policy, interpolation, fill"),
    ([{"name": "autoaugment", "args": {"policy": "foo"}}], "transforms[0].args.policy",
     "choose one of imagenet, cifar10, svhn"),
    ([{"name": "hflip", "args": {"p": 1.5}}], "transforms[0].args.p", "interval [0.0, 1.0]"),
    ([{"name": "randaugment", "args": {"magnitude": 40}}], "transforms[0].args.magnitude", "out of range"),
    ([{"name": "randaugment", "args": {"num_ops": 2.5}}], "transforms[0].args.num_ops", "not an integer"),
    ([{"name": "gaussian_noise", "args": {"std": -0.1}}], "transforms[0].args.std", ">= 0"),
    ([{"name": "gaussian_noise"}], "transforms[0].args.std", "missing"),
    ([{"name": "hflip", "arg": {"p": 1}}], "transforms[0].arg", "allowed: name, args"),
    ([{"name": "hflip", "args": [0.5]}], "transforms[0].args", "mapping"),
    (["hflip"], "transforms[0]", "expected a mapping"),
    ({"name": "hflip"}, "transforms", "expected a list"),
    ([{"name": "autoaugment", "args": {"fill": "red"}}], "transforms[0].args.fill", "inappropriate fill"),
    ([{"name": "elastic", "args": {"sigma": -1}}], "transforms[0].args.sigma", "negative"),
    ([{"name": "augmix", "args": {"interpolation": "bicubic"}}], "transforms[0].args.interpolation", "nearest"),
    ([{"name": "random_crop", "args": {"size": 32, "padding_mode": "wrap"}}], "transforms[0].args.padding_mode",
     "reflect"),
    ([{"name": "random_erasing", "args": {"inplace": True}}], "transforms[0].args.inplace", "not an argument"),
])
def test_check_transforms_names_the_key_on_one_line(spec, where, fragment):
    with pytest.raises(ValueError) as info:
        check_transforms(spec)
    message = str(info.value)
    assert message.startswith(where + ":") and "\n" not in message and fragment in message, message


def test_check_transforms_uses_the_callers_key_and_leaves_the_global_rng_alone():
    with pytest.raises(ValueError, match=r"^conditions\[3\]\.transforms\[0\]\.name: "):
        check_transforms([{"name": "mixup"}], key="conditions[3].transforms")
    state = torch.get_rng_state()
    for spec in PAPER.values():
        check_transforms(spec)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("which", ["fashion", "photos"])
def test_empty_spec_equals_to_model_inputs_exactly(which, fashion, photos):
    images, labels = fashion if which == "fashion" else (photos, np.array([3, 5]))
    reference = to_model_inputs(images, LITE0)
    dataset = AugmentedImages(images, labels, LITE0, [])
    assert torch.equal(torch.stack([dataset[i][0] for i in range(len(images))]), reference)
    assert torch.equal(model_ready(torch.as_tensor(images).permute(0, 3, 1, 2), LITE0), reference)
    x, y = epoch(images, labels, LITE0, [], seed=3)
    order = order_of(len(images), 8, seed=3)
    assert torch.equal(x, reference[order]) and torch.equal(y, torch.as_tensor(labels)[order])


def test_deterministic_identity_like_pipelines_keep_the_normalization(fashion):
    """A constant mid-gray image goes through flips and zero noise unchanged: same normalized value as clean data."""
    gray = np.full((1, 28, 28, 1), 128, dtype=np.uint8)
    identity_like = [{"name": "hflip", "args": {"p": 1.0}}, {"name": "vflip", "args": {"p": 1.0}}, noise(0.0)]
    for spec in (LITE0, CLIP):
        x, _ = epoch(gray, [0], spec, identity_like, seed=0)
        assert torch.equal(x, to_model_inputs(gray, spec))
        expected = (128 / 255 - torch.tensor(spec.mean)) / torch.tensor(spec.std)
        assert torch.allclose(x[0, :, 10, 10], expected, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_every_condition_normalizes_with_the_runs_own_input_spec(name, fashion):
    """The paper's public code normalized augmented data with ImageNet stats and clean data with CLIP stats. Here the
    same draws under two InputSpecs must give the same [0, 1] images once each is un-normalized with its own spec."""
    images, labels = fashion
    restored = []
    for spec in (LITE0, CLIP):
        x, _ = epoch(images, labels, spec, PAPER[name], seed=1)
        restored.append(x * torch.tensor(spec.std).view(1, 3, 1, 1) + torch.tensor(spec.mean).view(1, 3, 1, 1))
    assert torch.allclose(restored[0], restored[1], atol=1e-5)
    assert -1e-5 <= restored[0].min() < 0.02 and 0.98 < restored[0].max() <= 1 + 1e-5


def test_same_seed_same_epoch_different_seed_different_and_the_global_rng_is_untouched(fashion):
    images, labels = fashion
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = epoch(images, labels, LITE0, PAPER["auto2"], seed=0)
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(999)  # the caller's global RNG does not enter the augmentation
    again = epoch(images, labels, LITE0, PAPER["auto2"], seed=0)
    other = epoch(images, labels, LITE0, PAPER["auto2"], seed=1)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    in_dataset_order = [x[order_of(len(images), 8, seed).argsort()] for (x, _), seed in ((first, 0), (other, 1))]
    assert not torch.allclose(*in_dataset_order, atol=0.05)  # other draws, not only another order


def test_augmentation_is_applied_anew_each_epoch_in_the_unaugmented_order(fashion):
    images, labels = fashion
    generator, copy = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    epochs = augmented_epochs(images, labels, LITE0, PAPER["auto1"], batch_size=8)
    clean = to_model_inputs(images, LITE0)
    views = []
    for _ in range(2):
        order = torch.cat(list(batches(len(images), 8, copy)))  # what an un-augmented epoch would use
        xs, ys = zip(*epochs(generator))
        x, y = torch.cat(xs), torch.cat(ys)
        assert torch.equal(y, torch.as_tensor(labels)[order])
        views.append(x[order.argsort()])  # back to dataset order
        assert not torch.allclose(views[-1], clean, atol=0.05)
    assert torch.equal(generator.get_state(), copy.get_state())
    per_image_change = (views[0] - views[1]).flatten(1).abs().amax(1)
    assert (per_image_change > 0.05).float().mean() > 0.9  # fresh draws for (nearly) every image


def test_worker_processes_draw_exactly_what_the_training_process_draws(fashion):
    # num_workers only steers execution (it is no rerun trigger): the augmented batches are the same bytes
    images, labels = fashion[0][:16], fashion[1][:16]
    in_process = epoch(images, labels, LITE0, PAPER["auto1"], seed=2, num_workers=0)
    for workers in (1, 3):
        background = epoch(images, labels, LITE0, PAPER["auto1"], seed=2, num_workers=workers)
        assert torch.equal(background[0], in_process[0]) and torch.equal(background[1], in_process[1])
    global_state = torch.get_rng_state()
    epoch(images, labels, LITE0, PAPER["auto1"], seed=2, num_workers=2)
    assert torch.equal(torch.get_rng_state(), global_state)  # dropout masks keep their own stream
    clean = epoch(images, labels, LITE0, [], seed=2, num_workers=1)
    assert torch.equal(clean[0], to_model_inputs(images, LITE0)[order_of(16, 8, seed=2)])


@pytest.mark.parametrize("name", sorted(PAPER))
def test_gray_images_stay_gray_through_every_condition(name, fashion):
    """Gray images are augmented as gray and only then repeated to 3 channels: noise drawn per channel on a
    replicated gray image would add colour that clean and test images never have (a train/test shift that cost
    the noise conditions ~30 points of accuracy on Fashion-MNIST)."""
    images, labels = fashion
    x, _ = epoch(images, labels, LITE0, PAPER[name], seed=4)
    assert x.shape == (32, 3, 48, 48)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


def test_bad_image_arrays_are_rejected(fashion):
    images, labels = fashion
    with pytest.raises(ValueError, match="uint8 N x H x W x C"):
        AugmentedImages(images.astype(np.float32), labels, LITE0, [])
    with pytest.raises(ValueError, match="uint8 N x H x W x C"):
        AugmentedImages(images[..., 0], labels, LITE0, [])
    with pytest.raises(ValueError, match="labels"):
        AugmentedImages(images, labels[:3], LITE0, [])
