"""Randomized ESDs and correlation traps: WeightWatcher 0.7.7's ``randomize=True`` columns.

What WeightWatcher does (``apply_random_esd`` + ``random_eigenvalues`` + ``apply_mp_fit(random=True)``):

* Each weight matrix of the layer is shuffled **separately**: a dense layer's W as one matrix, a conv layer's
  kh*kw slices ``W[:, :, i, j]`` (transposed to N >= M) each on its own -- elements never move between slices.
  The shuffle is ``np.random.shuffle(W.flatten())`` with numpy's *global, unseeded* RandomState, then reshaped;
  the shuffled matrices' squared singular values are pooled (conv slices already carry the sqrt(1/2) factor).
* ``num_replicas = 5`` when the layer has fewer than 100 eigenvalues in all (``n_comp = M * rf < 100``), else 1:
  the replicas' eigenvalues are pooled into ``rand_evals`` (5x as many values; M in the TW margin unchanged).
* ``max_rand_eval = max(rand_evals)``.
* A *second*, independent 1-replica shuffle gives ``rand_distance`` (Jensen-Shannon distance between the sorted
  eigenvalue vectors, each treated as a probability vector), ``ww_softrank = max(rand) / max(evals)`` and
  ``ww_maxdist = max(evals) - max(rand)``.
* The MP fit of ``rand_evals`` (same code as ``mp_fit``) gives rand_num_spikes, num_traps (= rand_num_spikes:
  spikes of the *shuffled* matrix above its own MP edge + TW margin, i.e. correlation traps), rand_sigma_mp,
  rand_mp_softrank, rand_W_scale, rand_bulk_max, rand_bulk_min.

Caveat (WeightWatcher's, reproduced): a matrix with one row or column (a depthwise conv's N x 1 slices) keeps its
single eigenvalue under shuffling, so its "randomized" ESD equals the original (5 copies of it when < 100
eigenvalues) and rand_num_spikes = num_traps = 5 x num_spikes there (65 on EfficientNet-Lite0's 5x5 depthwise
layers) -- these are not correlation traps; ignore num_traps where M == 1.

Reproducibility: WeightWatcher draws from ``np.random`` (global); seeding it (``np.random.seed(s)``) before
``analyze`` makes its run deterministic. :func:`randomized_esd` accepts either a ``np.random.Generator`` (the
project's choice) or a legacy ``np.random.RandomState``: with ``RandomState(s)`` and WeightWatcher's matrix
orientation and call order (per layer: the replicated ESD, then a 1-replica ESD for the distance columns) it
draws the same permutations as WeightWatcher after ``np.random.seed(s)``, so every column can be compared exactly.
With a Generator only distributional properties are comparable.
"""

from __future__ import annotations

import numpy as np

from weightscape.spectra.mp import fit_mp

SMALL_LAYER = 100        # fewer eigenvalues than this -> WeightWatcher pools 5 replicas
SMALL_LAYER_REPLICAS = 5

RANDOMIZE_COLUMNS = ("max_rand_eval", "rand_distance", "ww_softrank", "ww_maxdist", "rand_num_spikes",
                     "num_traps", "rand_sigma_mp", "rand_mp_softrank", "rand_W_scale", "rand_bulk_max",
                     "rand_bulk_min")


def _squared_svals(W: np.ndarray, scale: float) -> np.ndarray:
    """Squared singular values of sqrt(scale) W (float64): eigvalsh of the small Gram, times scale.

    A vector (min dimension 1) goes through WeightWatcher's own route instead -- scipy SVD of the scaled matrix,
    squared -- so its single eigenvalue has WeightWatcher's exact bits: shuffling cannot change a vector's norm,
    so the replicas of e.g. a depthwise conv are exact copies whose kernel density has plateaus, and the MP fit of
    such an ESD turns on last-bit ties (a 1.7 % rand_sigma_mp difference on one EfficientNet layer otherwise)."""
    W = np.asarray(W, dtype=np.float64)
    if min(W.shape) == 1:
        from scipy import linalg

        sv = linalg.svd(W * np.sqrt(scale), compute_uv=False)
        return sv * sv
    G = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
    return np.clip(np.linalg.eigvalsh(G), 0.0, None) * scale


def default_replicas(matrices: list[np.ndarray]) -> int:
    """WeightWatcher's rule: 5 replicas when the layer has < 100 eigenvalues in all, else 1."""
    n_comp = sum(min(np.shape(W)) for W in matrices)
    return SMALL_LAYER_REPLICAS if n_comp < SMALL_LAYER else 1


def randomized_esd(matrices: list[np.ndarray], rng, scale: float = 1.0, *,
                   replicas: int | None = None) -> np.ndarray:
    """Sorted pooled eigenvalues of the element-wise shuffled matrices, times `scale`.

    matrices: the layer's matrices (one dense W, or a conv layer's kh*kw slices); each is shuffled on its own
    (flatten in C order, permute, reshape), as WeightWatcher does. rng: ``np.random.Generator`` or
    ``np.random.RandomState`` (the latter reproduces WeightWatcher's draws, see the module doc). scale: the
    convention factor on eigenvalues (0.5 for WeightWatcher's conv slices: its sqrt(1/2) weight scaling).
    replicas: how many independent shuffles to pool; None = WeightWatcher's rule (:func:`default_replicas`).
    Eigenvalues are those of the small Gram by float64 ``eigvalsh`` (WeightWatcher: float64 SVD, squared).
    """
    if replicas is None:
        replicas = default_replicas(matrices)
    out = []
    for _ in range(int(replicas)):
        for W in matrices:
            W = np.asarray(W)
            flat = W.flatten()          # a copy, C order, like WeightWatcher's W.flatten()
            rng.shuffle(flat)
            out.append(_squared_svals(flat.reshape(W.shape), float(scale)))
    return np.sort(np.concatenate(out)) if out else np.zeros(0)


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """RMT_Util.jensen_shannon_distance: the two (sorted) eigenvalue vectors as probability vectors. The
    divergence is clipped at 0: for (nearly) identical vectors round-off can make it -1e-17, where WeightWatcher
    returns nan (sqrt of a negative) -- e.g. depthwise convs, whose shuffled ESD equals the original."""
    from scipy import stats

    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2
    return float(np.sqrt(max((stats.entropy(p, m) + stats.entropy(q, m)) / 2, 0.0)))


def _resample_sorted(values: np.ndarray, n: int) -> np.ndarray:
    """n evenly spaced quantiles of `values` (to compare ESDs of different sizes)."""
    return np.quantile(np.sort(values), (np.arange(n) + 0.5) / n)


def correlation_traps(evals: np.ndarray, rand_evals: np.ndarray, Q: float, *, M: int | None = None,
                      rand_evals_single: np.ndarray | None = None) -> dict:
    """WeightWatcher 0.7.7's randomize columns for one layer.

    evals: the layer's ESD; rand_evals: its randomized ESD from :func:`randomized_esd` (replicas pooled);
    Q = N / M of one matrix; M: WeightWatcher's per-matrix M for the Tracy-Widom margin (see
    :func:`weightscape.spectra.mp.fit_mp`; default ``len(evals)``, right for a single dense matrix).
    rand_evals_single: WeightWatcher computes rand_distance / ww_softrank / ww_maxdist from a second,
    independent 1-replica shuffle; pass one (``randomized_esd(..., replicas=1)``) to do the same. Default: use
    `rand_evals` itself -- the same distribution when the layer has >= 100 eigenvalues (1 replica); for smaller
    layers its max is the max over 5 replicas (slightly larger on average than WeightWatcher's 1-replica max)
    and rand_distance compares `evals` with len(evals) quantiles of it (JS needs equal lengths).

    Returns {max_rand_eval, rand_distance, ww_softrank, ww_maxdist, rand_num_spikes, num_traps, rand_sigma_mp,
    rand_mp_softrank, rand_W_scale, rand_bulk_max, rand_bulk_min}.
    """
    evals = np.sort(np.asarray(evals, dtype=np.float64).ravel())
    rand_evals = np.sort(np.asarray(rand_evals, dtype=np.float64).ravel())
    single = rand_evals if rand_evals_single is None else np.sort(np.asarray(rand_evals_single, np.float64))
    if M is None:
        M = len(evals)
    out = {"max_rand_eval": float(np.max(rand_evals))}
    if len(evals):
        other = single if len(single) == len(evals) else _resample_sorted(single, len(evals))
        out["rand_distance"] = jensen_shannon_distance(evals, other)
        out["ww_softrank"] = float(np.max(single) / np.max(evals))
        out["ww_maxdist"] = float(np.max(evals) - np.max(single))
    fit = fit_mp(rand_evals, Q, M=M)
    out.update({
        "rand_num_spikes": fit["num_spikes"],
        "num_traps": fit["num_spikes"],
        "rand_sigma_mp": fit["sigma_mp"],
        "rand_mp_softrank": fit["mp_softrank"],
        "rand_W_scale": fit["W_scale"],
        "rand_bulk_max": fit["bulk_max"],
        "rand_bulk_min": fit["bulk_min"],
    })
    return out
