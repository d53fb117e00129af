"""Power-law fit of an ESD tail: WeightWatcher 0.7.7's default fit (``pl_package='ww'``, ``WW_powerlaw.WWFit``),
vectorised.

WeightWatcher's algorithm, reproduced exactly (same candidates, formulas, tie-breaking and failure values):

1. ``data`` = eigenvalues > 1e-5, sorted; n_all = len(data). Every value but the largest is a candidate xmin.
2. n_all >= 20 (standard): for candidate i with tail size n = n_all - i,
   ``alpha_i = 1 + n / (sum(log data[i:]) - n log data[i])`` (continuous MLE); if alpha_i > 1,
   ``D_i = max_j |1 - (data[i+j] / data[i])**(1 - alpha_i) - j / n|`` (j = 0..n-1), else D_i = 1.
   ``sigma_i = (alpha_i - 1) / sqrt(n)``. The first candidate with the smallest D wins.
3. n_all < 20 (small-N branch): bias-corrected ``alpha = 1 + (n - 1) / s`` with s = sum(log(x / xmin)) over the
   tail, only for tails of >= 8 points with s > 1e-12 (others keep alpha = 0, D = 1); D as above when
   alpha > 1. WeightWatcher's small-N code ranks candidates by ``D - 0.868 / sqrt(n)``, but ``WWFit.__init__``
   then re-selects ``argmin(D)``, so in 0.7.7 the smallest D wins here too. If no tail qualifies, candidate 0
   gets the whole-set fit (its sigma still comes from the array *before* alpha was filled in, as there).
4. ``xmax`` = the largest eigenvalue (WeightWatcher's default ``xmax=None``); ``num_pl_spikes`` = #evals >= xmin.
   A failed fit (fewer than 2 usable eigenvalues, or NaN alpha) gives alpha = xmin = D = sigma =
   num_pl_spikes = -1 and xmax = NaN.

Speed: WeightWatcher loops over all candidates in Python, each computing D over its whole tail (O(n^2) work).
Here the alphas come from one reversed cumulative sum, and the argmin of D is found without computing every D:
a cheap lower bound per candidate (the KS deviation at 16 tail points -- a max over a subset of the same
floats) ranks the candidates, exact D's are computed in bound order, and the search stops when the next bound
exceeds the best D found (pruned candidates cannot win; ties keep the smaller index, like ``np.argmin``). On
random-init ResNet-50 + ViT-B/16 this evaluates ~4 % of the candidates exactly; the fit is then a few percent of
the eigenvalue cost. Only round-off differs from WeightWatcher (~1e-15 relative): alpha, xmin and D agree to
<= 1e-12 unless two candidates' D tie to round-off.

``min_tail`` (not in WeightWatcher): only xmins with at least `min_tail` eigenvalues in the tail are candidates.
WeightWatcher's unrestricted search sometimes picks an xmin near the top of the ESD, where a handful of
eigenvalues ("fingers") give a small D and a huge, meaningless alpha (its issues #102, #103, #199); a minimum
tail removes those candidates. An ESD with fewer than `min_tail` usable eigenvalues is a failed fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

EVALS_THRESH = 1e-5        # WeightWatcher: eigenvalues at or below are ignored by the fit
SMALL_N_CUTOFF = 20        # WW_powerlaw.SMALL_N_CUTOFF
SMALL_N_KMIN = 8           # fit_powerlaw_smallN(k_min=8)
SMALL_N_KS_WEIGHT = 0.868  # J = D - 0.868 / sqrt(n)
BLOCK_ELEMENTS = 1 << 17   # (candidate, tail point) pairs per exact block: ~1 MB temporaries (cache-sized)
FIRST_BATCH = 1            # elements budget of the first exact batch: effectively one candidate
LB_POINTS = 16             # tail points per candidate in the lower-bound pass
LB_BLOCK = 4096            # candidates per lower-bound block


@dataclass
class PowerLawFit:
    """Result of :func:`fit_powerlaw`; the WeightWatcher columns of the same names."""

    alpha: float = -1.0
    xmin: float = -1.0
    xmax: float = float("nan")
    D: float = -1.0
    sigma: float = -1.0
    num_pl_spikes: int = -1
    status: str = "failed"

    def as_dict(self) -> dict:
        return asdict(self)


def _deviations(logx: np.ndarray, a: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_all: int) -> np.ndarray:
    """``|1 - (x_j / x_i)^(1 - alpha_i) - (j - i) / n_i|`` for candidates `rows` (``a = alpha - 1``, finite) at
    points `cols` (1-D, shared by all rows, or 2-D, one row of points per candidate), computed as
    ``|(n_all - j) / n_i - exp((log x_i - log x_j) a_i)|``. The float operations per (i, j) pair are the same
    whichever shape `cols` has, so a max over a subset of points is an exact lower bound of the full max."""
    cols2 = cols if cols.ndim == 2 else cols[None, :]
    t = logx[rows][:, None] - logx[cols2]
    t *= a[:, None]
    with np.errstate(over="ignore"):                                # j < i overflows; callers mask those
        np.exp(t, out=t)                                            # (x_j / x_i)^(1 - alpha_i)
    inv_n = 1.0 / (n_all - rows).astype(np.float64)
    diff = (n_all - cols2).astype(np.float64) * inv_n[:, None]      # 1 - (j - i) / n_i
    diff -= t
    return np.abs(diff, out=diff)


def _ks_rows(data: np.ndarray, logx: np.ndarray, alphas: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact KS distance D_i of candidates `rows` (sorted indices, alpha > 1) over their whole tails, one
    vectorised (rows x tail) block; points below a candidate's own xmin are masked out."""
    n_all = len(data)
    cols = np.arange(rows[0], n_all)
    a = alphas[rows] - 1.0
    finite = np.isfinite(a)
    diff = _deviations(logx, np.where(finite, a, 0.0), rows, cols, n_all)
    if rows.size > 1:
        diff[cols[None, :] < rows[:, None]] = 0.0
    out = diff.max(axis=1)
    for r in np.flatnonzero(~finite):                               # alpha = inf (tied tail): WW's literal formula
        i = rows[r]
        tail = data[i:]
        with np.errstate(all="ignore"):
            out[r] = np.max(np.abs(1 - (tail / data[i]) ** (-alphas[i] + 1) - np.arange(len(tail)) / len(tail)))
    return out


def _best_ks(data: np.ndarray, logx: np.ndarray, alphas: np.ndarray, candidates: np.ndarray) -> tuple[int, float]:
    """(index, D) of the first candidate with the smallest KS distance -- ``np.argmin`` over WeightWatcher's full
    D array, without computing every D in full.

    Candidates with alpha <= 1 have D = 1 (WeightWatcher's default), which every valid candidate beats (D < 1).
    For the rest, a lower bound from ``LB_POINTS`` evenly spaced points of each tail ranks them; exact D's are
    then computed in bound order until the next bound exceeds the best D found. Pruned candidates have
    D >= bound > best, so the result equals the brute-force argmin (ties keep the smaller index)."""
    valid = candidates[alphas[candidates] > 1]
    if valid.size == 0:
        return int(candidates[0]), 1.0
    n_all = len(data)
    lower = np.empty(valid.size)
    frac = np.linspace(0.0, 1.0, LB_POINTS)
    for start in range(0, valid.size, LB_BLOCK):
        rows = valid[start:start + LB_BLOCK]
        cols = rows[:, None] + np.round(frac[None, :] * (n_all - rows - 1)[:, None]).astype(np.int64)
        a = alphas[rows] - 1.0
        finite = np.isfinite(a)
        lb = _deviations(logx, np.where(finite, a, 0.0), rows, cols, n_all).max(axis=1)
        lower[start:start + LB_BLOCK] = np.where(finite, lb, 0.0)   # alpha = inf: no bound, always checked
    order = np.argsort(lower, kind="stable")
    best_i, best_d = -1, np.inf
    pos = 0
    while pos < order.size and lower[order[pos]] <= best_d:
        # next batch of candidates in bound order, limited by the (rows x tail) block size
        # the first batch is a few best-bound candidates, so a good best_d prunes everything after it
        take, budget = [], BLOCK_ELEMENTS if best_i >= 0 else FIRST_BATCH
        while pos < order.size and lower[order[pos]] <= best_d and (not take or budget > 0):
            take.append(order[pos])
            budget -= n_all - valid[order[pos]]
            pos += 1
        rows = np.sort(valid[take])
        Ds = _ks_rows(data, logx, alphas, rows)
        k = int(np.argmin(Ds))
        if Ds[k] < best_d or (Ds[k] == best_d and rows[k] < best_i):
            best_i, best_d = int(rows[k]), float(Ds[k])
    return best_i, best_d


def _fit_standard(data: np.ndarray, min_tail: int | None):
    """WWFit.fit_power_law_standard + the argmin-D selection. Returns (i, alpha, sigma, D)."""
    n_all = len(data)
    logx = np.log(data)
    tails = np.cumsum(logx[::-1])[::-1][:-1]                      # sum(log data[i:]), i = 0..n_all-2
    n = (n_all - np.arange(n_all - 1)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1 + n / (tails - n * logx[:-1])
    sigmas = (alphas - 1) / np.sqrt(n)
    last = n_all - 2 if not min_tail else min(n_all - 2, n_all - min_tail)
    i, D = _best_ks(data, logx, alphas, np.arange(last + 1))
    return i, alphas[i], sigmas[i], D


def _fit_small_n(data: np.ndarray, min_tail: int | None):
    """WWFit.fit_powerlaw_smallN (k_min = 8, or min_tail if larger), literally: at most 19 points.

    Its own choice by J = D - 0.868 / sqrt(n) is discarded by ``WWFit.__init__``, which re-selects
    ``argmin(Ds)`` over the small-N arrays (D = 1 for skipped candidates); that final selection is what counts."""
    n_all = len(data)
    k_min = max(SMALL_N_KMIN, min_tail or 0)
    logx = np.log(data)
    alphas, Ds, Js = np.zeros(n_all - 1), np.ones(n_all - 1), np.full(n_all - 1, np.inf)
    for i in range(n_all - 1):
        n_int = n_all - i
        if n_int < k_min:
            continue
        n = float(n_int)
        s = np.sum(logx[i:]) - n * logx[i]
        if s <= 1e-12:
            continue
        alphas[i] = alpha = 1.0 + (n - 1.0) / s
        if alpha <= 1.0:
            continue
        fit_cdf = 1.0 - (data[i:] / data[i]) ** (1.0 - alpha)
        Ds[i] = float(np.max(np.abs(np.arange(n_int) / n - fit_cdf)))
        Js[i] = Ds[i] - SMALL_N_KS_WEIGHT / np.sqrt(n)
    sigmas = (alphas - 1.0) / np.sqrt(n_all - np.arange(n_all - 1))  # before the fallback fills alphas[0]
    if not np.isfinite(Js).any():
        # no qualifying tail: the whole set is the tail (unless it is degenerate)
        n = float(n_all)
        s = np.sum(logx) - n * logx[0]
        if s > 1e-12:
            alphas[0] = alpha = 1.0 + (n - 1.0) / s
            Ds[0] = float(np.max(np.abs(np.arange(n_all) / n - (1.0 - (data / data[0]) ** (1.0 - alpha)))))
    i = int(np.argmin(Ds))
    return i, alphas[i], sigmas[i], Ds[i]


def fit_powerlaw(evals: np.ndarray, *, min_tail: int | None = None, thresh: float = EVALS_THRESH) -> PowerLawFit:
    """Fit a power law to the tail of an ESD (eigenvalues in any order), WeightWatcher 0.7.7's default way.

    `min_tail`: smallest tail size a candidate xmin may have (None: WeightWatcher's unrestricted search)."""
    evals = np.asarray(evals, dtype=np.float64)
    data = np.sort(evals[evals > thresh])
    n_all = len(data)
    if n_all < 2 or (min_tail and n_all < min_tail):
        return PowerLawFit()
    if n_all < SMALL_N_CUTOFF:
        i, alpha, sigma, D = _fit_small_n(data, min_tail)
    else:
        i, alpha, sigma, D = _fit_standard(data, min_tail)
    if np.isnan(alpha):
        return PowerLawFit()
    xmin = float(data[i])
    return PowerLawFit(alpha=float(alpha), xmin=xmin, xmax=float(data[-1]), D=float(D), sigma=float(sigma),
                       num_pl_spikes=int(np.count_nonzero(evals >= xmin)), status="success")
