"""Per-layer spectral metrics from an ESD, with WeightWatcher 0.7.7's column names and definitions
(``apply_esd``, ``apply_powerlaw``, ``apply_norm_metrics``; ``RMT_Util.matrix_rank`` / ``matrix_entropy``).

All are functions of the eigenvalues lambda_i of the layer's ESD (after the convention's scale):

========================  ==================================================================================
norm, log_norm            sum(lambda) (= squared Frobenius norm of the scaled matrices); log10 of it
spectral_norm             lambda_max; ``log_spectral_norm`` = log10(lambda_max); ``lambda_max`` repeats it
alpha_weighted            alpha * log10(lambda_max)
log_alpha_norm            log10(sum_i lambda_i ** alpha)
stable_rank               sum(lambda) / lambda_max
matrix_rank               #{sqrt(lambda_i) > sqrt(lambda_max) * N * eps} (numpy's tolerance, N = larger dim)
entropy                   -sum(p ln p) / ln(rank) with p = lambda / sum(lambda) + 1e-10, rank = matrix_rank +
                          1e-10 (WeightWatcher's EPSILON on the CPU path)
weak_rank_loss            #{lambda_i < 1e-6}
sv_max, sv_min, rank_loss from the individual matrices (see ``esd.layer_esd``)
========================  ==================================================================================

As in WeightWatcher, a failed power-law fit (alpha = -1) still flows into alpha_weighted and log_alpha_norm;
filter on ``status == "success"`` before averaging those.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-10                   # WeightWatcher's EPSILON (CPU, float64 path)
WEAK_RANK_LOSS_TOLERANCE = 1e-6   # WeightWatcher's default `tolerance`
OVER_TRAINED_THRESH, UNDER_TRAINED_THRESH = 2.0, 6.0

#: identity / shape columns, in table order
ID_COLUMNS = ["layer_id", "name", "longname", "layer_type", "convention", "N", "M", "Q", "rf", "num_evals",
              "status", "warning"]
#: power-law fit columns
FIT_COLUMNS = ["alpha", "xmin", "xmax", "D", "sigma", "num_pl_spikes"]
#: ESD-derived columns
METRIC_COLUMNS = ["alpha_weighted", "log_alpha_norm", "norm", "log_norm", "spectral_norm", "log_spectral_norm",
                  "stable_rank", "entropy", "matrix_rank", "rank_loss", "weak_rank_loss", "lambda_max", "sv_max",
                  "sv_min", "has_esd"]
COLUMNS = ID_COLUMNS + FIT_COLUMNS + METRIC_COLUMNS


def matrix_rank(svals: np.ndarray, N: int) -> int:
    """Numerical rank from singular values (numpy's ``matrix_rank`` tolerance: max(sv) * N * eps)."""
    if svals.size == 0:
        return 0
    return int(np.count_nonzero(svals > np.max(svals) * N * np.finfo(svals.dtype).eps))


def matrix_entropy(svals: np.ndarray, N: int) -> float:
    """WeightWatcher's normalised spectral entropy: -sum(p ln p) / ln(rank), p_i = sv_i^2 / sum(sv^2)."""
    rank = matrix_rank(svals, N) + EPSILON
    evals = svals * svals
    with np.errstate(divide="ignore", invalid="ignore"):
        p = evals / np.sum(evals) + EPSILON
        return float(-np.sum(p * np.log(p)) / np.log(rank))


def fit_warning(alpha: float, status: str) -> str:
    """WeightWatcher's warning column: alpha < 2 "over-trained", alpha > 6 "under-trained". A failed fit says so
    instead (WeightWatcher labels it "over-trained", because its alpha is -1)."""
    if status != "success":
        return "power-law fit failed"
    if alpha < OVER_TRAINED_THRESH:
        return "over-trained"
    if alpha > UNDER_TRAINED_THRESH:
        return "under-trained"
    return ""


def esd_metrics(evals: np.ndarray, N: int, alpha: float) -> dict:
    """The ESD-derived columns (``METRIC_COLUMNS`` except sv_max / sv_min / rank_loss) of one layer.

    `evals` is the pooled, scaled ESD; `alpha` the fitted exponent (-1 when the fit failed)."""
    evals = np.asarray(evals, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        norm = np.sum(evals)   # numpy floats: 0 / 0 -> nan (an all-zero matrix), as in WeightWatcher
        spectral_norm = np.max(evals) if evals.size else np.float64("nan")
        log_spectral_norm = float(np.log10(spectral_norm))
        svals = np.sqrt(evals)
        return {
            "alpha_weighted": alpha * log_spectral_norm,
            "log_alpha_norm": float(np.log10(np.sum(evals ** alpha))),
            "norm": float(norm),
            "log_norm": float(np.log10(norm)),
            "spectral_norm": float(spectral_norm),
            "log_spectral_norm": log_spectral_norm,
            "stable_rank": float(norm / spectral_norm),
            "entropy": matrix_entropy(svals, N),
            "matrix_rank": matrix_rank(svals, N),
            "weak_rank_loss": int(np.count_nonzero(evals < WEAK_RANK_LOSS_TOLERANCE)),
            "lambda_max": float(spectral_norm),
            "has_esd": True,
        }
