"""Measured data diversity of a training condition: the Vendi score (Friedman & Dieng 2023).

VS(K) = exp(-sum_i lambda_i log lambda_i), lambda = eigenvalues of K/n for an n x n similarity matrix K with
k(x, x) = 1: the "effective number of distinct samples" (1 when all are identical, n when all are orthogonal).
It is measured in pixel space and in the pretrained encoder's embedding space; the weighted VS multiplies the
embedding VS by rho, the normalized Frobenius inner product of the real and the augmented embedding matrices.

Written here instead of depending on PyPI `vendi-score` 0.0.3 (2022, numpy/scipy/scikit-learn): its `score_X`
goes through `scipy.sparse.csr.csr_matrix`, a namespace that warns under SciPy 1.17 and is removed in SciPy 2.0;
its `score_dual` always forms the d x d Gram matrix even when d >> n (pixel vectors); it does not compute in
float64. The numerics needed are ~20 lines, checked in tests/test_diversity.py against known answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.linalg
import torch
from torch import nn

from weightscape.inputs import InputSpec, to_model_inputs
from weightscape.io import read_json
from weightscape.tables import checked_identity

__all__ = ["class_balanced_sample", "diversity_table", "embed", "measure_diversity", "pixel_vendi", "vendi_score",
           "weighted_vendi"]

_BLOCK = 4096  # rows/columns cast to float64 at a time: a float32 input is never copied whole to float64


def _row_norms(x: np.ndarray) -> np.ndarray:
    norms = np.empty(len(x))
    for i in range(0, len(x), _BLOCK):
        block = x[i:i + _BLOCK].astype(np.float64)
        norms[i:i + _BLOCK] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return norms


def vendi_score(features: np.ndarray, *, normalize: bool = True) -> float:
    """Vendi score of n samples given as an n x d feature matrix (any float/int dtype; computed in float64).

    normalize=True: cosine-similarity kernel (rows L2-normalized first; a zero row is an error, its cosine is
    undefined). normalize=False: plain linear kernel K = X X^T. VS needs k(x, x) = 1 so that the eigenvalues of
    K/n sum to one; for the linear kernel they are therefore divided by their sum, which changes nothing when the
    rows already have unit norm and otherwise gives the effective rank of K (invariant to a global scale of X),
    rather than a number that depends on the units of the features.

    The nonzero eigenvalues of X X^T / n equal those of X^T X / n, so only the smaller Gram matrix
    (min(n, d) squared) is decomposed; negative eigenvalues are round-off and are clipped; 0 log 0 = 0.
    """
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"features must be a non-empty n x d matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf")
    n, d = x.shape
    scale = np.ones(n)
    if normalize:
        norms = _row_norms(x)
        if (norms == 0).any():
            raise ValueError(f"row {int(np.argmin(norms))} is all zeros: its cosine similarity is undefined")
        scale = 1.0 / norms
    if n <= d:  # n x n Gram, accumulated over column blocks
        gram = np.zeros((n, n))
        for j in range(0, d, _BLOCK):
            block = x[:, j:j + _BLOCK].astype(np.float64)
            gram += block @ block.T
        gram *= np.outer(scale, scale)
    else:  # d x d Gram of the (row-scaled) features, accumulated over row blocks
        gram = np.zeros((d, d))
        for i in range(0, n, _BLOCK):
            block = x[i:i + _BLOCK].astype(np.float64) * scale[i:i + _BLOCK, None]
            gram += block.T @ block
    eigenvalues = np.clip(scipy.linalg.eigvalsh(gram / n), 0.0, None)
    total = eigenvalues.sum()
    if total <= 0:  # only possible for normalize=False with all-zero features
        raise ValueError("features are all zeros: the linear kernel has no spectrum")
    p = eigenvalues / total  # == eigenvalues for the cosine kernel up to round-off (trace K/n = 1)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def pixel_vendi(images: np.ndarray | torch.Tensor) -> float:
    """Vendi score of images in pixel space: each image flattened to one vector, centred on the sample's mean
    image, cosine kernel (i.e. the correlation between images' deviations from the mean image).

    Why centred: raw pixels are non-negative, so every raw cosine is dominated by what all images share (a black
    background, a brightness offset). Clamped noise on a black background adds exactly such a shared offset and
    made the raw-cosine score *fall* at small noise std on Fashion-MNIST; on centred pixels the score measures
    variation between images and rises with the noise std, as diversity should.
    Any layout (N x H x W x C or N x C x H x W); pass the intensities to be compared (measure_diversity passes
    [0, 1] pixels, not model-normalized ones).
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    vectors = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    return vendi_score(vectors - vectors.mean(axis=0), normalize=True)


@torch.no_grad()
def embed(model: nn.Module, classifier_name: str, inputs: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """The backbone's features of `inputs`: the input of the classifier module, float32 N x D.

    Captured with a forward pre-hook on `model.get_submodule(classifier_name)`, so it works for every architecture
    of the registry without knowing its forward (timm, torchvision, ...). The hook is prepended so it sees the
    features before any head dropout hook (which is the identity in eval mode anyway). Runs in eval mode on the
    model's device and restores the model's train/eval mode afterwards.
    """
    if len(inputs) == 0:
        raise ValueError("no inputs to embed")
    head = model.get_submodule(classifier_name)
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(
        lambda module, args: captured.append(args[0].detach().flatten(1).float().cpu()), prepend=True)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        batches = 0
        for start in range(0, len(inputs), batch_size):
            model(inputs[start:start + batch_size].to(device))
            batches += 1
    finally:
        handle.remove()
        model.train(was_training)
    if len(captured) != batches:  # a head called zero or several times per forward would mis-align the rows
        raise RuntimeError(f"{classifier_name!r} was called {len(captured)} times for {batches} batches")
    return torch.cat(captured).numpy()


def weighted_vendi(real: np.ndarray, augmented: np.ndarray) -> dict[str, float]:
    """Embedding VS of `augmented`, rho and their product, for row-aligned embeddings (`measure_diversity` pairs
    each row with a real image of the same class).

    rho = <R, A>_F / (||R||_F ||A||_F): how close the augmented embeddings stay to the real ones; 1 when they are
    identical, so the weighted VS discounts diversity that comes from drifting away from the real data.
    """
    r = np.asarray(real, dtype=np.float64)
    a = np.asarray(augmented, dtype=np.float64)
    if r.shape != a.shape:
        raise ValueError(f"real {r.shape} and augmented {a.shape} embeddings must have the same shape")
    denominator = np.linalg.norm(r) * np.linalg.norm(a)
    if denominator == 0:
        raise ValueError("an embedding matrix is all zeros: rho is undefined")
    rho = float(np.sum(r * a) / denominator)
    vs = vendi_score(a, normalize=True)
    return {"vendi_embedding": vs, "rho": rho, "vendi_weighted": vs * rho}


def class_balanced_sample(labels: np.ndarray, size: int, seed) -> np.ndarray:
    """Sorted indices of `size` images, size // classes per class without replacement; the remainder goes to
    classes drawn at random (not the first ones, so no class is systematically favoured). `seed`: an int or a
    sequence of ints (numpy.random.default_rng)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if size < 1 or len(classes) == 0:
        raise ValueError(f"need size >= 1 and at least one class, got size={size}, {len(classes)} classes")
    rng = np.random.default_rng(seed)
    counts = np.full(len(classes), size // len(classes))
    counts[rng.choice(len(classes), size % len(classes), replace=False)] += 1
    picks = []
    for cls, count in zip(classes, counts):
        pool = np.flatnonzero(labels == cls)
        if count > len(pool):
            raise ValueError(f"class {cls} has {len(pool)} images, fewer than the {count} a sample of {size} needs")
        picks.append(rng.choice(pool, count, replace=False))
    return np.sort(np.concatenate(picks))


def same_label_order(labels: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A permutation of `labels`'s positions whose labels read exactly like `target` (same class counts)."""
    if sorted(labels.tolist()) != sorted(target.tolist()):
        raise ValueError("the two samples have different class counts")
    order = np.empty(len(target), np.int64)
    for label in np.unique(target):
        order[target == label] = np.flatnonzero(labels == label)
    return order


def same_class_draw(labels: np.ndarray, target: np.ndarray, seed) -> np.ndarray:
    """Indices into `labels` of a seeded draw without replacement whose labels read exactly like `target`, row by
    row (the same class counts, in the same order)."""
    rng = np.random.default_rng(seed)
    labels, target = np.asarray(labels), np.asarray(target)
    out = np.empty(len(target), np.int64)
    for label in np.unique(target):
        rows, pool = np.flatnonzero(target == label), np.flatnonzero(labels == label)
        if len(rows) > len(pool):
            raise ValueError(f"class {label} has {len(pool)} images, fewer than the {len(rows)} a draw needs")
        out[rows] = rng.choice(pool, len(rows), replace=False)
    return out


#: the second entropy word of a draw's reference sample: an independent class-balanced draw of real images
REFERENCE_DRAW = 1


def measure_diversity(images_uint8_nhwc: np.ndarray, labels: np.ndarray, model: nn.Module, classifier_name: str,
                      spec: InputSpec, make_view: Callable[[np.ndarray, torch.Generator], torch.Tensor],
                      sample_size: int, seed: int) -> dict:
    """Pixel, embedding and weighted VS of one training condition on a seeded class-balanced sample.

    `make_view(images, generator)` turns the sampled uint8 N x H x W x C images into the condition's model-ready
    float views N x 3 x S x S (the baseline: `to_model_inputs(images, spec)`); `generator` is seeded with `seed`.
    - pixel VS: on the views de-normalized back to [0, 1] pixels. Cosine similarity is not invariant to the
      per-channel (x - mean) / std shift, so normalized pixels would make the pixel VS depend on which model's
      mean/std is used; [0, 1] pixels make it a property of the data only.
    - embedding VS: on embed(model, views); rho against the embeddings of an INDEPENDENT class-balanced draw of
      real images (seeded with (seed, REFERENCE_DRAW)), each row paired with a real image of the same class. A
      view is never compared with its own clean image: rho then measures how far the condition's images lie from
      real images of their class, for every condition on the same footing - the baseline's rho is below 1 too
      (the spread of real images within a class), and a real + synthetic mix is compared with real draws exactly
      as the real-only set is.
    """
    labels = np.asarray(labels)
    index = class_balanced_sample(labels, sample_size, seed)
    images = np.asarray(images_uint8_nhwc)[index]
    views = make_view(images, torch.Generator().manual_seed(seed))
    expected = (len(images), 3, spec.image_size, spec.image_size)
    if tuple(views.shape) != expected:
        raise ValueError(f"make_view returned shape {tuple(views.shape)}, expected {expected}")
    reference = same_class_draw(labels, labels[index], [seed, REFERENCE_DRAW])
    real = to_model_inputs(np.asarray(images_uint8_nhwc)[reference], spec)
    mean = torch.tensor(spec.mean, dtype=views.dtype, device=views.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=views.dtype, device=views.device).view(1, -1, 1, 1)
    augmented_embedding = embed(model, classifier_name, views)
    real_embedding = embed(model, classifier_name, real)
    return {"n": len(images), "vendi_pixel": pixel_vendi(views * std + mean),
            **weighted_vendi(real_embedding, augmented_embedding)}


def diversity_table(json_files: Sequence[str | Path], conditions: Sequence[Mapping] | None = None) -> pd.DataFrame:
    """One row per condition and draw (one draw per grid seed): the identity (dataset, model: from the file's place;
    condition; seed: the draw's), the condition's family / kind / level and the draw's scores.

    `conditions`: the grid's conditions in order, each {condition, source, family, kind, level}: a condition that
    trains on the same data as `source` (e.g. a dropout level and the baseline) gets the rows of source's file.
    Without it, one block of rows per file, as the file names it.
    """
    files = {}
    for path in json_files:
        data = read_json(path)
        identity = checked_identity(path, data)
        files[(identity["dataset"], identity["model"], identity["condition"])] = data
    if conditions is None:
        conditions = [{"condition": c, "source": c, **{k: d.get(k) for k in ("family", "kind", "level")}}
                      for (_, _, c), d in files.items()]
    rows = []
    for dataset, model in dict.fromkeys((d, m) for d, m, _ in files):
        for c in conditions:
            data = files[(dataset, model, c["source"])]
            label = {"dataset": dataset, "model": model, "condition": c["condition"], "family": c["family"],
                     "kind": c["kind"], "level": c["level"]}
            rows += [{**label, "seed": draw["seed"], **draw} for draw in data["draws"]]
    return pd.DataFrame(rows)
