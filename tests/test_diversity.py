"""Vendi-score diversity: known answers on synthetic matrices, and real Fashion-MNIST images through the
pretrained EfficientNet-Lite0."""

import copy

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from weightscape.data.sources import SOURCES
from weightscape.diversity import (REFERENCE_DRAW, class_balanced_sample, diversity_table, embed, measure_diversity,
                                   pixel_vendi, same_class_draw, vendi_score, weighted_vendi)
from weightscape.io import write_json
from weightscape.models import build_model, insert_dropout
from weightscape.inputs import InputSpec, to_model_inputs


def naive_vendi(x: np.ndarray) -> float:
    """The definition, literally: eigenvalues of the n x n cosine kernel / n."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    lam = scipy.linalg.eigvalsh(x @ x.T / len(x))
    lam = lam[lam > 1e-15]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def random_orthogonal(n: int, d: int, seed: int) -> np.ndarray:
    """n orthonormal rows in R^d (n <= d)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, n)))
    return q.T


# --------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("shape", [(10, 3), (5, 40)])  # dual (d < n) and primal (n <= d) paths
def test_identical_samples_score_one(shape):
    row = np.random.default_rng(0).normal(size=shape[1])
    assert vendi_score(np.tile(row, (shape[0], 1))) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("features", [np.eye(7), random_orthogonal(12, 12, 1), random_orthogonal(6, 50, 2),
                                      3.0 * random_orthogonal(6, 50, 3) * np.arange(1, 7)[:, None]])
def test_orthogonal_samples_score_n(features):
    assert vendi_score(features) == pytest.approx(len(features), rel=1e-9)


def test_two_clusters_of_identical_points_score_two():
    centers = random_orthogonal(2, 16, 4)
    x = np.repeat(centers, 9, axis=0) * np.random.default_rng(5).uniform(0.5, 2.0, size=(18, 1))  # norms vary
    assert vendi_score(x) == pytest.approx(2.0, rel=1e-9)


def test_invariant_to_sample_order():
    x = np.random.default_rng(6).normal(size=(30, 8))
    perm = np.random.default_rng(7).permutation(30)
    assert vendi_score(x[perm]) == pytest.approx(vendi_score(x), rel=1e-12)


@pytest.mark.parametrize("shape", [(60, 20), (20, 60), (25, 25)])
def test_small_gram_path_equals_naive_n_by_n(shape):
    x = np.random.default_rng(8).normal(size=shape).astype(np.float32)  # float32 in, float64 inside
    assert vendi_score(x) == pytest.approx(naive_vendi(x.astype(np.float64)), rel=1e-9)
    assert 1.0 < vendi_score(x) <= min(shape)


def test_linear_kernel_equals_cosine_on_unit_rows_and_ignores_scale():
    x = np.random.default_rng(9).normal(size=(40, 10))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert vendi_score(unit, normalize=False) == pytest.approx(vendi_score(x), rel=1e-9)
    assert vendi_score(5.0 * x, normalize=False) == pytest.approx(vendi_score(x, normalize=False), rel=1e-9)


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="all zeros"):
        vendi_score(np.vstack([np.ones(4), np.zeros(4)]))
    with pytest.raises(ValueError, match="n x d"):
        vendi_score(np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        vendi_score(np.array([[1.0, np.nan]]))


def test_rho_and_weighted_vendi():
    r = np.random.default_rng(10).normal(size=(50, 16))
    same = weighted_vendi(r, r.copy())
    assert same["rho"] == pytest.approx(1.0, abs=1e-12)
    assert same["vendi_embedding"] == pytest.approx(vendi_score(r))
    assert same["vendi_weighted"] == pytest.approx(same["vendi_embedding"], rel=1e-12)
    moved = weighted_vendi(r, r + 0.5 * np.random.default_rng(11).normal(size=r.shape))
    assert 0.0 < moved["rho"] < 1.0
    assert moved["vendi_weighted"] == pytest.approx(moved["vendi_embedding"] * moved["rho"], rel=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        weighted_vendi(r, r[:10])


def test_class_balanced_sample():
    labels = np.repeat(np.arange(4), 10)
    index = class_balanced_sample(labels, 18, seed=3)
    assert len(set(index)) == 18 and sorted(np.bincount(labels[index])) == [4, 4, 5, 5]
    assert np.array_equal(index, class_balanced_sample(labels, 18, seed=3))
    assert not np.array_equal(index, class_balanced_sample(labels, 18, seed=4))
    with pytest.raises(ValueError, match="fewer"):
        class_balanced_sample(labels, 44, seed=0)


def test_diversity_table_has_a_row_per_draw_and_reads_identities_from_the_file_place(tmp_path):
    files = []
    for name, vs in (("noise", 16.0), ("baseline", 21.0)):
        path = tmp_path / "results" / "diversity" / "fm" / "lite0" / f"{name}.json"
        draws = [{"seed": seed, "n": 200, "vendi_pixel": 5.9, "vendi_embedding": vs + seed, "rho": 1.0,
                  "vendi_weighted": vs + seed} for seed in (0, 1)]
        write_json(path, {"condition": name, "family": "diversity", "draws": draws})
        files.append(path)
    table = diversity_table(files)
    assert list(table.columns[:8]) == ["dataset", "model", "condition", "family", "kind", "level", "seed", "n"]
    assert table[["condition", "seed", "vendi_embedding"]].values.tolist() == [
        ["noise", 0, 16.0], ["noise", 1, 17.0], ["baseline", 0, 21.0], ["baseline", 1, 22.0]]
    # a dropout level trains on the baseline's data: it gets the baseline's draws under its own name
    shared = diversity_table(files, [
        {"condition": "baseline", "source": "baseline", "family": "baseline", "kind": None, "level": 0.0},
        {"condition": "dropout_0.5", "source": "baseline", "family": "dropout", "kind": None, "level": 0.5},
        {"condition": "noise", "source": "noise", "family": "diversity", "kind": "noise", "level": 0.1}])
    assert shared[["condition", "family", "level", "vendi_embedding"]].values.tolist() == [
        ["baseline", "baseline", 0.0, 21.0], ["baseline", "baseline", 0.0, 22.0],
        ["dropout_0.5", "dropout", 0.5, 21.0], ["dropout_0.5", "dropout", 0.5, 22.0],
        ["noise", "diversity", 0.1, 16.0], ["noise", "diversity", 0.1, 17.0]]
    moved = tmp_path / "results" / "diversity" / "fm" / "lite0" / "other.json"
    moved.write_text(files[0].read_text())  # says condition "noise", lies in other.json
    with pytest.raises(ValueError, match="disagree"):
        diversity_table([moved])
    (tmp_path / "noise.json").write_text(files[0].read_text())
    with pytest.raises(ValueError, match="not a file of the results layout"):
        diversity_table([tmp_path / "noise.json"])


# --------------------------------------------------------------------------- real images, pretrained model


@pytest.fixture(scope="module")
def fashion(fashion_root):
    return SOURCES["fashion_mnist"].load({"root": str(fashion_root)})


@pytest.fixture(scope="module")
def lite0():
    built = build_model("efficientnet_lite0", 10, head_seed=0)
    return built, InputSpec(32, built.mean, built.std)


def pixels_01(images: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """Model-resolution views in [0, 1] (the space measure_diversity computes pixel VS in)."""
    mean, std = torch.tensor(spec.mean).view(1, -1, 1, 1), torch.tensor(spec.std).view(1, -1, 1, 1)
    return to_model_inputs(images, spec) * std + mean


def noise_view(noise_std: float, spec: InputSpec, clamp: bool = True):
    """A make_view for Gaussian pixel noise on [0, 1] (clamped back into [0, 1] by default)."""
    mean, std = torch.tensor(spec.mean).view(1, -1, 1, 1), torch.tensor(spec.std).view(1, -1, 1, 1)

    def view(images: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        x = pixels_01(images, spec)
        x = x + noise_std * torch.randn(x.shape, generator=generator)
        return ((x.clamp(0, 1) if clamp else x) - mean) / std
    return view


def test_embed_is_the_pretrained_backbone_feature(fashion, lite0):
    built, spec = lite0
    model = built.module.train()
    x = to_model_inputs(fashion.train_images[:6].copy(), spec)
    features = embed(model, built.classifier_name, x, batch_size=4)  # two batches, one short
    assert features.shape == (6, 1280) and features.dtype == np.float32
    assert model.training  # mode restored
    with torch.no_grad():
        reference = model.eval().forward_head(model.forward_features(x), pre_logits=True)
    np.testing.assert_allclose(features, reference.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("arch", "kwargs"), [("timm:resnet18", {}), ("torchvision:resnet18", {}),
                                              ("timm:vit_tiny_patch16_224", {"img_size": 32})])
def test_embed_is_the_classifier_input_for_other_archs(arch, kwargs):
    built = build_model(arch, 5, weights="random", head_seed=0, model_kwargs=kwargs)
    insert_dropout(built.module, 0.5, built.classifier_name)  # head dropout must not leak into features
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    headless = copy.deepcopy(built.module).eval()
    parent, _, leaf = built.classifier_name.rpartition(".")
    setattr(headless.get_submodule(parent) if parent else headless, leaf, nn.Identity())
    with torch.no_grad():
        reference = headless(x).flatten(1)
    np.testing.assert_allclose(embed(built.module, built.classifier_name, x), reference.numpy(), rtol=1e-5,
                               atol=1e-5)


def test_pixel_vs_rises_with_zero_mean_noise(fashion, lite0):
    _, spec = lite0
    images = fashion.train_images[class_balanced_sample(fashion.train_labels, 200, seed=0)]
    scores = [pixel_vendi(pixels_01(images, spec))]
    for noise_std in (0.01, 0.03, 0.05):
        view = noise_view(noise_std, spec, clamp=False)(images, torch.Generator().manual_seed(0))
        scores.append(pixel_vendi(view * 0.5 + 0.5))  # lite0: mean = std = 0.5
    assert scores == sorted(scores) and len(set(scores)) == 4, scores


def test_pixel_vs_rises_with_clamped_noise(fashion, lite0):
    """The paper's noise (clamped to [0,1]): on centred pixels the score rises with the std. (On raw pixels it
    did not: clamping on the black background adds a shared offset that raises every raw cosine.)"""
    _, spec = lite0
    images = fashion.train_images[class_balanced_sample(fashion.train_labels, 200, seed=0)]
    clean = pixel_vendi(pixels_01(images, spec))
    scores = [pixel_vendi(noise_view(s, spec)(images, torch.Generator().manual_seed(0)) * 0.5 + 0.5)
              for s in (0.01, 0.03, 0.05, 0.1)]
    assert [clean, *scores] == sorted([clean, *scores]) and len(set(scores)) == 4, (clean, scores)


def test_measure_diversity_baseline_and_noise(fashion, lite0):
    built, spec = lite0
    args = (fashion.train_images, fashion.train_labels, built.module, built.classifier_name, spec)
    seen = []

    def identity(images, generator):
        seen.append(images)
        return to_model_inputs(images, spec)

    base = measure_diversity(*args, identity, sample_size=100, seed=0)
    assert set(base) == {"n", "vendi_pixel", "vendi_embedding", "rho", "vendi_weighted"} and base["n"] == 100
    index = class_balanced_sample(fashion.train_labels, 100, seed=0)
    assert np.array_equal(seen[0], fashion.train_images[index])  # the class-balanced sample reaches make_view
    # rho pairs every image with an independent real image of its class, so the real-only set's rho is below 1
    # too (the spread within a class); the weighted score is embedding VS x rho for every condition alike
    reference = same_class_draw(fashion.train_labels, fashion.train_labels[index], [0, REFERENCE_DRAW])
    assert not np.array_equal(reference, index)
    assert np.array_equal(fashion.train_labels[reference], fashion.train_labels[index])
    real = embed(built.module, built.classifier_name, to_model_inputs(fashion.train_images[reference], spec))
    mine = embed(built.module, built.classifier_name, to_model_inputs(seen[0], spec))
    assert base["rho"] == pytest.approx(weighted_vendi(real, mine)["rho"]) and 0.3 < base["rho"] < 0.99
    assert base["vendi_weighted"] == pytest.approx(base["vendi_embedding"] * base["rho"])
    assert base["vendi_pixel"] == pytest.approx(pixel_vendi(pixels_01(seen[0], spec)))
    assert 1.0 < base["vendi_pixel"] < base["vendi_embedding"] < 100
    noisy = measure_diversity(*args, noise_view(0.05, spec), sample_size=100, seed=0)
    assert noisy == measure_diversity(*args, noise_view(0.05, spec), sample_size=100, seed=0)  # seeded
    assert 0.0 < noisy["rho"] < base["rho"]  # noisy views lie farther from real images of their class
    assert noisy["vendi_weighted"] == pytest.approx(noisy["vendi_embedding"] * noisy["rho"])


def test_same_class_draw_matches_the_target_row_by_row():
    labels = np.repeat(np.arange(3), 10)
    target = np.array([2, 0, 0, 1, 2, 2])
    draw = same_class_draw(labels, target, [1, 1])
    assert np.array_equal(labels[draw], target) and len(set(draw)) == len(draw)
    assert np.array_equal(draw, same_class_draw(labels, target, [1, 1]))
    with pytest.raises(ValueError, match="class 0 has 10 images, fewer than the 11"):
        same_class_draw(labels, np.zeros(11, int), 0)