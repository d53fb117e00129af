"""FARMS: aspect-ratio-corrected power-law alpha (Fixed-Aspect-Ratio Matrix Subsampling, arXiv 2506.06280).

The plain HT-SR alpha depends on a layer's aspect ratio Q = N / M: even an i.i.d. Gaussian matrix's ESD (a
Marchenko-Pastur law whose shape is set by Q) gives different alphas for different Q, so alphas of layers with
different shapes are not comparable. FARMS removes that bias by analysing sub-matrices of one fixed shape:

1. Orient each matrix so rows <= cols, and cut windows of ``window = (rows, cols)`` (default 100 x 200, i.e.
   every window has Q = 2) on a grid of at most ``max_windows`` x ``max_windows`` positions: along each axis the
   window starts are ``round(linspace(0, size - w, k))`` with ``k = min(max_windows, size - w + 1)`` -- evenly
   spaced, spanning the whole matrix, overlapping when the matrix is less than ``max_windows`` windows long
   (that is the "<= 10 x 10 grid"; distinct starts only).
2. Pool the eigenvalues of every window's small Gram (``eigvalsh`` of the 100 x 100 ``S S^T``, float64, batched),
   over all windows of all the layer's matrices (a conv layer's kh*kw slices each contribute their windows).
3. Fit a power law to the pooled ESD with ``xmin = median`` eigenvalue: continuous MLE
   ``alpha = 1 + n / sum(ln(lambda / xmin))`` over the n eigenvalues >= xmin.

A matrix smaller than the window in either dimension (after orientation) is used whole, as one "window" (its own
aspect ratio, so the correction does not apply to it; such layers are small: stems, depthwise/1x1 convs with few
channels, heads with few classes). ``scale`` multiplies the eigenvalues (the convention factor, 0.5 for
WeightWatcher's conv slices); alpha does not depend on it (xmin scales with the eigenvalues), the eigenvalues do.
"""

from __future__ import annotations

import numpy as np

ZERO_RTOL = 1e-12


def _starts(size: int, w: int, max_windows: int) -> np.ndarray:
    k = min(int(max_windows), size - w + 1)
    return np.unique(np.round(np.linspace(0, size - w, k)).astype(int))


def window_eigenvalues(W: np.ndarray, window=(100, 200), max_windows: int = 10) -> tuple[np.ndarray, int]:
    """Pooled eigenvalues of the fixed-shape windows of one matrix (no scale), and the number of windows."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {W.shape}")
    if W.shape[0] > W.shape[1]:
        W = W.T
    wr, wc = int(window[0]), int(window[1])
    if wr > wc:
        wr, wc = wc, wr
    rows, cols = W.shape
    if rows < wr or cols < wc:
        G = W @ W.T
        return np.linalg.eigvalsh(G), 1
    rs, cs = _starts(rows, wr, max_windows), _starts(cols, wc, max_windows)
    subs = np.stack([W[r:r + wr, c:c + wc] for r in rs for c in cs])      # (k, wr, wc)
    grams = subs @ subs.transpose(0, 2, 1)                                 # (k, wr, wr)
    return np.linalg.eigvalsh(grams).ravel(), len(subs)


def median_xmin_alpha(evals: np.ndarray) -> tuple[float, float, int]:
    """Continuous power-law MLE with xmin = median: (alpha, xmin, tail size). nan when undefined."""
    ev = np.asarray(evals, dtype=np.float64).ravel()
    ev = ev[np.isfinite(ev)]
    if len(ev):
        ev = ev[ev > ZERO_RTOL * np.max(ev)]          # numerically zero eigenvalues (rank-deficient windows)
    if len(ev) < 2:
        return float("nan"), float("nan"), 0
    xmin = float(np.median(ev))
    tail = ev[ev >= xmin]
    s = float(np.sum(np.log(tail / xmin)))
    if s <= 0:
        return float("nan"), xmin, len(tail)
    return 1.0 + len(tail) / s, xmin, len(tail)


def farms_alpha(matrices: list[np.ndarray], *, window=(100, 200), max_windows: int = 10,
                scale: float = 1.0, return_eigenvalues: bool = False) -> dict:
    """FARMS alpha of one layer (see the module doc).

    matrices: the layer's matrices (one dense W, or a conv layer's kh*kw slices). Returns
    {"alpha_farms", "farms_windows" (windows used, all matrices), "farms_num_evals" (pooled eigenvalues),
    "farms_xmin" (the median eigenvalue, scaled)}; with ``return_eigenvalues=True`` also "farms_evals"
    (sorted, scaled). Eigenvalues below 1e-12 x the largest (rank-deficient windows) are left out of the fit.
    """
    pooled, windows = [], 0
    for W in matrices:
        ev, k = window_eigenvalues(W, window, max_windows)
        pooled.append(ev)
        windows += k
    evals = np.sort(np.concatenate(pooled)) * float(scale) if pooled else np.zeros(0)
    alpha, xmin, _ = median_xmin_alpha(evals)
    out = {"alpha_farms": alpha, "farms_windows": int(windows), "farms_num_evals": int(len(evals)),
           "farms_xmin": xmin}
    if return_eigenvalues:
        out["farms_evals"] = evals
    return out
