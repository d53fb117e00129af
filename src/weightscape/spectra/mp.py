"""Marchenko-Pastur (MP) fit of one layer's ESD: WeightWatcher 0.7.7's ``mp_fit=True`` columns, fast.

WeightWatcher's method (``WeightWatcher.mp_fit`` + ``RMT_Util.fit_density_with_range`` / ``resid_mp``), which
this module reproduces step by step:

1. Rescale the eigenvalues to mean 1: ``W_scale = sqrt(n) / sqrt(sum(evals))``, ``x = W_scale**2 * evals``.
2. Fit one parameter, sigma. The data is a linear-kernel kernel density (bandwidth 0.1) of ``x`` (of ``sqrt(x)``
   when Q == 1, which is fitted by the quarter-circle law instead of MP) evaluated on 1,000 points of
   ``[0, max + 0.5]``; points where the density is <= 0.01 are dropped. The residual of a sigma is
   ``sum((rho_MP(sigma, Q) - kde)**2)`` over the kept points, or 1000 per point when the MP bulk edge
   ``b = (sigma (1 + 1/sqrt(Q)))**2`` lies left of the KDE's peak or right of the last kept point, or the lower
   edge ``a`` lies right of the peak. ``scipy.optimize.brute`` scores the grid
   ``np.mgrid[0.05 s0 : 2 s0 : 0.01 s0]`` (195 values, ``s0 = sqrt(max x) / (1 + 1/sqrt(Q))``) and then polishes
   the best grid point with ``scipy.optimize.fmin`` (Nelder-Mead), so sigma_mp is in general *off* the grid.
3. ``bulk_max = (sigma (1 + 1/sqrt(Q)))**2`` and ``bulk_min = (sigma (1 - 1/sqrt(Q)))**2`` in rescaled units;
   Tracy-Widom margin ``TW = bulk_max**(2/3) M**(-2/3) / sqrt(Q)``;
   ``num_spikes = #{x > bulk_max + sqrt(TW)}``; ``mp_softrank = bulk_max / max(x)``.
4. Reported: ``sigma_mp`` in the *rescaled* units (about 1 for an i.i.d. matrix, whatever its scale),
   ``bulk_max`` / ``bulk_min`` mapped back to the original units (divided by ``W_scale**2``), ``W_scale``.
   M in the TW margin is WeightWatcher's ``ww_layer.M``: the smaller dimension of one matrix -- for a conv layer
   the smaller channel count of one kh x kw slice, *not* the number of pooled eigenvalues.
   Any exception inside WeightWatcher's fit (e.g. a KDE that is below 0.01 everywhere) makes every column -1;
   so does it here.

Why it is fast: the kernel density does not depend on sigma, yet WeightWatcher refits and re-scores a sklearn
``KernelDensity`` (a tree query of 1,000 points) for every one of the ~195 grid values and ~20-60 Nelder-Mead
steps (78 % of WeightWatcher's ``mp_fit`` time). Here the KDE is evaluated once per layer, the 195 grid
residuals are one broadcast array operation, and only the Nelder-Mead polish calls a (~20 microsecond) scalar
objective (benchmarks/spectra_vs_weightwatcher.py times it against WeightWatcher's).

Agreement (tolerance): the KDE is WeightWatcher's own sklearn call (made once), and the residual uses the same
numpy expressions in the same order, the same grid and the same ``fmin``; so on the *same eigenvalues* the
result is bitwise WeightWatcher's. That is deliberate: a linear-kernel KDE of few eigenvalues has exact plateaus,
the *first* maximum decides the MP edge test, and an exact re-implementation of the KDE that differs from
sklearn's tree sum by 1e-15 (``kde="direct"``) broke one such tie on an EfficientNet depthwise layer and moved
sigma_mp by 3 % (num_spikes unchanged). With eigenvalues from float64 ``eigvalsh`` of the small Gram instead of
WeightWatcher's SVD (inputs equal to ~1e-14), all 71 layers of ResNet-18 and EfficientNet-Lite0 gave identical
num_spikes and sigma_mp / bulk_max / bulk_min / mp_softrank within 3.3e-15 relative; the tests allow 1e-9
(``MP_RTOL`` in tests/test_spectra_rmt.py). Residual risk: an ESD whose fit hinges on a last-bit KDE tie (many
repeated eigenvalues) can still follow a different Nelder-Mead path when its eigenvalues differ in the last bit.
"""

from __future__ import annotations

import warnings

import numpy as np

BANDWIDTH = 0.1          # WeightWatcher's kernel bandwidth (rescaled units)
KDE_POINTS = 1000        # np.linspace(0, max + 0.5, 1000)
KDE_THRESH = 0.01        # KDE points at or below this density are dropped from the residual
BAD_RESIDUAL = 1000.0    # residual per kept point when the MP edges are inconsistent with the KDE peak

MP_COLUMNS = ("num_spikes", "sigma_mp", "mp_softrank", "W_scale", "bulk_max", "bulk_min")


def linear_kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float = BANDWIDTH,
               max_pairs: int = 2_000_000) -> np.ndarray:
    """Density of a linear ("triangular") kernel estimate at `grid`, identical to
    ``exp(sklearn.neighbors.KernelDensity(kernel='linear', bandwidth=h).fit(samples).score_samples(grid))``:
    ``(1 / (n h)) sum_i max(0, 1 - |g - x_i| / h)``. Only eigenvalues within one bandwidth of a grid point are
    touched (sorted samples + searchsorted), in chunks of at most `max_pairs` (point, sample) pairs."""
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    grid = np.asarray(grid, dtype=np.float64)
    n, h = len(x), float(bandwidth)
    out = np.zeros(len(grid))
    if n == 0:
        return out
    lo = np.searchsorted(x, grid - h, side="left")
    hi = np.searchsorted(x, grid + h, side="right")
    counts = hi - lo
    csum = np.cumsum(counts)
    start = 0
    while start < len(grid):
        done = csum[start - 1] if start else 0
        stop = int(np.searchsorted(csum, done + max_pairs, side="right"))
        stop = min(max(stop, start + 1), len(grid))
        c = counts[start:stop]
        total = int(c.sum())
        if total:
            gi = np.repeat(np.arange(start, stop), c)
            first = np.cumsum(c) - c
            xi = np.arange(total) - np.repeat(first, c) + np.repeat(lo[start:stop], c)
            contrib = np.maximum(0.0, 1.0 - np.abs(grid[gi] - x[xi]) / h)
            out[start:stop] = np.bincount(gi - start, weights=contrib, minlength=stop - start)
        start = stop
    return out / (n * h)


def kde_density(samples: np.ndarray, grid: np.ndarray, bandwidth: float = BANDWIDTH,
                method: str = "sklearn") -> np.ndarray:
    """The ESD's linear-kernel density at `grid`. "sklearn": WeightWatcher's exact call (one fit + score per
    layer instead of one per sigma) -- bitwise WeightWatcher's values, which matters because a piecewise-linear
    KDE of a few eigenvalues often has exact plateaus and the first grid maximum decides the MP fit's edge
    test. "direct": :func:`linear_kde` (no scikit-learn; equal to ~1e-15 but ties may break differently)."""
    if method == "sklearn":  # a hard dependency: a silent fallback would make results depend on the install
        from sklearn.neighbors import KernelDensity

        kde = KernelDensity(kernel="linear", bandwidth=bandwidth).fit(np.asarray(samples).reshape(-1, 1))
        with np.errstate(divide="ignore", under="ignore"):
            return np.exp(kde.score_samples(np.asarray(grid)[:, np.newaxis]))
    if method != "direct":
        raise ValueError(f"unknown KDE method {method!r} (sklearn, direct)")
    return linear_kde(samples, grid, bandwidth)


def _mp_density(x: np.ndarray, Q: float, sigma):
    """RMT_Util.marchenko_pastur_fun (same expression, broadcasting over sigma)."""
    y = 1 / Q
    b = np.power(sigma * (1 + np.sqrt(1 / Q)), 2)
    a = np.power(sigma * (1 - np.sqrt(1 / Q)), 2)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter(action="ignore", category=RuntimeWarning)
        val = np.nan_to_num((1 / (2 * np.pi * sigma * sigma * x * y)) * np.sqrt((b - x) * (x - a)))
    return val, a, b


def _qc_density(x: np.ndarray, sigma):
    """RMT_Util.quarter_circle_fun (support [0, 2] whatever sigma; only the prefactor depends on it)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter(action="ignore", category=RuntimeWarning)
        return np.nan_to_num((1 / (np.pi * sigma * sigma)) * np.sqrt(4 - x ** 2))


class _Residual:
    """WeightWatcher's ``resid_mp(..., allresid=False)`` with the sigma-independent KDE precomputed."""

    def __init__(self, to_fit: np.ndarray, Q: float, bw: float = BANDWIDTH, kde: str = "sklearn"):
        self.Q = Q
        xde = np.linspace(0, np.max(to_fit) + 0.5, KDE_POINTS)
        yde = kde_density(to_fit, xde, bw, kde)
        good = np.where(yde > KDE_THRESH)[0]
        self.n_bad = int(np.sum(yde < KDE_THRESH))
        self.xde, self.yde = xde[good], yde[good]
        self.zeros = np.zeros(self.n_bad)
        if Q != 1:
            # WeightWatcher: xde[np.where(yde == max(yde))][0] -- raises on an empty set (whole fit -> -1)
            self.x_peak = self.xde[np.where(self.yde == max(self.yde))][0]
            self.x_last = max(self.xde)

    def __call__(self, p) -> float:
        """Scalar objective, same expression order as WeightWatcher (for the Nelder-Mead polish)."""
        sigma = p
        if self.Q == 1:
            resid = _qc_density(self.xde, sigma) - self.yde
        else:
            ymp, a, b = _mp_density(self.xde, self.Q, sigma)
            if (b < self.x_peak) | (b > self.x_last) | (a > self.x_peak):
                resid = np.zeros(len(self.yde)) + BAD_RESIDUAL
            else:
                resid = ymp - self.yde
        resid = np.concatenate((resid, self.zeros))
        return np.sum(resid ** 2)

    def grid(self, sigmas: np.ndarray) -> np.ndarray:
        """Objective on a whole sigma grid at once (one (n_sigma, n_points) array)."""
        s = np.asarray(sigmas, dtype=np.float64)[:, None]
        if self.Q == 1:
            resid = _qc_density(self.xde[None, :], s) - self.yde[None, :]
            bad = np.zeros(len(sigmas), dtype=bool)
        else:
            ymp, a, b = _mp_density(self.xde[None, :], self.Q, s)
            resid = ymp - self.yde[None, :]
            bad = ((b < self.x_peak) | (b > self.x_last) | (a > self.x_peak))[:, 0]
        resid = np.concatenate((resid, np.broadcast_to(self.zeros, (len(sigmas), self.n_bad))), axis=1)
        out = np.sum(resid ** 2, axis=1)
        if bad.any():
            out[bad] = np.sum(np.concatenate((np.zeros(len(self.yde)) + BAD_RESIDUAL, self.zeros)) ** 2)
        return out


def fit_sigma(x: np.ndarray, Q: float, bw: float = BANDWIDTH, polish: bool = True, kde: str = "sklearn") -> float:
    """WeightWatcher's ``fit_density_with_range``: grid search of sigma + Nelder-Mead polish, on rescaled
    eigenvalues `x` (not square-rooted; Q == 1 square-roots them for the quarter-circle fit as WW does)."""
    from scipy import optimize

    s0 = np.sqrt(np.max(x) / np.square(1 + 1.0 / np.sqrt(Q)))   # RMT_Util.calc_sigma
    sigmas = np.mgrid[slice(0.05 * s0, 2.0 * s0, 0.01 * s0)]
    to_fit = np.sqrt(x) if Q == 1 else x
    resid = _Residual(to_fit, Q, bw, kde)
    values = resid.grid(sigmas)
    best = sigmas[int(np.argmin(values))]
    if not polish:
        return float(best)
    res = optimize.fmin(resid, best, full_output=1, disp=False)
    return float(res[0][0])


def fit_mp(evals: np.ndarray, Q: float, *, M: int | None = None, polish: bool = True,
           kde: str = "sklearn") -> dict:
    """WeightWatcher 0.7.7 ``mp_fit=True`` columns for one ESD.

    evals: the layer's eigenvalues as analysed (eigenvalues of W^T W, no 1/N; conv slices pooled with the
    sqrt(1/2) weight scaling already applied). Q = N / M of one matrix (N >= M). M: WeightWatcher's M for the
    Tracy-Widom margin -- the smaller dimension of *one* matrix (a conv layer's per-slice channel count);
    default ``len(evals)``, right for a single dense matrix only. ``polish=False`` skips the Nelder-Mead step
    (grid value only; not WeightWatcher's answer). kde: "sklearn" (default, bitwise WeightWatcher's KDE) or
    "direct" (numpy only), see :func:`kde_density`.

    Returns {num_spikes, sigma_mp, mp_softrank, W_scale, bulk_max, bulk_min} (WeightWatcher's names; sigma_mp in
    rescaled mean-1 units, bulk_* in the units of `evals`). On a failed fit every value is -1 like WeightWatcher.
    """
    ev = np.clip(np.asarray(evals, dtype=np.float64).ravel(), 0.0, None)   # SVD-squared evals are >= 0
    failed = {"num_spikes": -1, "sigma_mp": -1.0, "mp_softrank": -1.0, "W_scale": -1.0,
              "bulk_max": -1.0, "bulk_min": -1.0}
    n = len(ev)
    if M is None:
        M = n
    total = float(np.sum(ev))
    if n == 0 or not np.isfinite(total) or total <= 0:
        return failed
    Q = float(Q)
    w_scale = np.sqrt(n) / np.sqrt(total)
    x = (w_scale * w_scale) * ev
    lambda_max = np.max(x)
    try:
        sigma = fit_sigma(x, Q, polish=polish, kde=kde)
    except (ValueError, RuntimeError, FloatingPointError, ZeroDivisionError):
        return failed
    bulk_max = (sigma * (1 + 1 / np.sqrt(Q))) ** 2
    bulk_min = (sigma * (1 - 1 / np.sqrt(Q))) ** 2
    tw = 1 / np.sqrt(Q) * np.power(bulk_max, 2 / 3) * np.power(M, -2 / 3)
    bulk_max_tw = bulk_max + np.sqrt(tw)
    return {
        "num_spikes": int(np.count_nonzero(x > bulk_max_tw)),
        "sigma_mp": float(sigma),
        "mp_softrank": float(bulk_max / lambda_max),
        "W_scale": float(w_scale),
        "bulk_max": float(bulk_max / (w_scale * w_scale)),
        "bulk_min": float(bulk_min / (w_scale * w_scale)),
    }
