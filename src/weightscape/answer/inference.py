"""The seed-level tests and intervals of the across-seed answer, in one place (every p-value from scipy.stats).

    t_summary / tost        plain one-sample t-test, t-interval and two one-sided tests of a few values
    variance_prior          the empirical-Bayes prior of many rows' variances (Smyth 2004)
    moderated_tests         vectorised moderated t-tests against 0 and against +-margin, with intervals
    bh, selection_level     Benjamini-Hochberg, and the interval level that agrees with its decisions
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

LEVEL = 0.95


def bh(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control) of the finite entries; NaN kept."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def finite(x) -> np.ndarray:
    """The finite values of x as a float array."""
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def t_summary(values, popmean: float = 0.0) -> dict:
    """n, mean, sd (ddof=1), d_z (mean / sd), 95 % t-interval and two-sided one-sample t-test
    (scipy.stats.ttest_1samp) of the finite values. NaN where undefined (n < 2, or zero spread)."""
    x = finite(values)
    n = len(x)
    out = dict(n=n, mean=float(x.mean()) if n else np.nan, sd=float(x.std(ddof=1)) if n > 1 else np.nan,
               d_z=np.nan, ci_low=np.nan, ci_high=np.nan, t=np.nan, p=np.nan)
    if n > 1 and out["sd"] > 0:
        res = stats.ttest_1samp(x, popmean)
        ci = res.confidence_interval(LEVEL)
        out.update(d_z=(out["mean"] - popmean) / out["sd"], ci_low=float(ci.low), ci_high=float(ci.high),
                   t=float(res.statistic), p=float(res.pvalue))
    return out


def tost(values, margin: float, alpha: float = 0.05) -> dict:
    """Two one-sided tests (Schuirmann 1987) of the mean against [-margin, +margin].

    p_lower = ttest_1samp(x, -margin, alternative="greater"), p_upper = ttest_1samp(x, +margin, alternative="less"),
    p_tost = max of the two; equivalent when p_tost < alpha, which is the same as the (1 - 2 alpha) t-interval
    (ci90_low, ci90_high) lying inside the margin. NaN (and not equivalent) for n < 2, zero spread or no margin.
    """
    x = finite(values)
    out = dict(ci90_low=np.nan, ci90_high=np.nan, p_lower=np.nan, p_upper=np.nan, p_tost=np.nan, equivalent=False)
    if len(x) < 2 or not np.isfinite(margin) or margin <= 0 or x.std(ddof=1) == 0:
        return out
    lower = stats.ttest_1samp(x, -margin, alternative="greater")
    upper = stats.ttest_1samp(x, margin, alternative="less")
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(1 - 2 * alpha)
    p = max(float(lower.pvalue), float(upper.pvalue))
    out.update(ci90_low=float(ci.low), ci90_high=float(ci.high), p_lower=float(lower.pvalue),
               p_upper=float(upper.pvalue), p_tost=p, equivalent=bool(p < alpha))
    return out


# ----------------------------------------------------------------------------------------------- moderated t
@dataclass(frozen=True)
class Prior:
    """The empirical-Bayes prior of one metric's paired variances: df (d0; 0 = none) and var (s0^2) - numbers, or
    arrays of one prior per row."""

    df: float | np.ndarray = 0.0
    var: float | np.ndarray = np.nan

    @staticmethod
    def pair(a: "Prior", b: "Prior") -> "Prior":
        """The prior of a difference of two rows with priors a and b: their variances averaged (the variance of a
        seed-paired difference is the sum of the two runs' own variances, as a paired effect's is), the smaller
        of their degrees of freedom."""
        if not (np.isfinite(a.var) and np.isfinite(b.var)):
            return a if np.isfinite(a.var) else b
        return Prior(df=min(a.df, b.df), var=(a.var + b.var) / 2)


def variance_prior(s2, df) -> Prior:
    """Fit the scaled inverse-chi-square prior of sample variances `s2` with `df` degrees of freedom each, by
    the method of moments on log s^2 (limma's fitFDist; Smyth 2004, section 6.2). Zero or non-finite variances are
    left out; fewer than 3 usable: no prior. d0 is capped at the pooled degrees of freedom sum(df)."""
    s2, df = np.broadcast_arrays(np.asarray(s2, dtype=float), np.asarray(df, dtype=float))
    ok = np.isfinite(s2) & (s2 > 0) & (df > 0)
    if ok.sum() < 3:
        return Prior()
    s2, df = s2[ok], df[ok]
    e = np.log(s2) - special.digamma(df / 2) + np.log(df / 2)
    excess = e.var(ddof=1) - special.polygamma(1, df / 2).mean()
    cap = float(df.sum())
    if excess <= 0 or special.polygamma(1, cap / 2) >= excess:
        d0 = cap
    else:  # trigamma(d0 / 2) = excess, trigamma decreasing
        d0 = 2 * optimize.brentq(lambda y: special.polygamma(1, y) - excess, 1e-8, cap / 2)
    return Prior(df=d0, var=float(np.exp(e.mean() + special.digamma(d0 / 2) - np.log(d0 / 2))))


def moderated_tests(D: np.ndarray, prior: Prior, margin=np.nan, scale=1.0, level: float = LEVEL,
                    tost_level: float = 1 - 2 * 0.05) -> dict:
    """Seed-level moderated t-tests of paired differences D (..., seeds) against 0 and against +-margin.

    The variance of each row is (d0 * scale * s0^2 + (n - 1) s^2) / (d0 + n - 1), with d0 + n - 1 degrees of
    freedom, but never less than the row's own s^2: a row noisier than the prior (weight decay 5e-3 on alpha)
    keeps its own variance and plain t-test with n - 1 df. That rejects a subset of what the moderated test
    rejects, so it keeps the moderated test's level under its model, and the plain test's where one condition's
    noise is not the others' (a prior fitted to homogeneous conditions would otherwise shrink an outlier's
    variance towards theirs). `scale` is the row's variance relative to a paired effect's (1 for an effect; see
    dose.Family for a point of a curve). `prior`'s df and var may be arrays, one prior per row (broadcast over
    D's leading axes). Seeds with a NaN are left out. Returns arrays (...): n, mean, sd (own),
    se, df, t, p (two-sided, scipy.stats.t), ci_low / ci_high (at `level`), p_tost (max of the two one-sided tests; NaN
    without a margin), ci90_low / ci90_high (at `tost_level`: inside +-margin exactly when p_tost < (1 -
    tost_level) / 2)."""
    D = np.asarray(D, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.isfinite(D).sum(axis=-1)
        mean = np.nansum(D, axis=-1) / np.where(n > 0, n, np.nan)
        d = np.maximum(n - 1, 0)
        s2 = np.nansum((D - mean[..., None]) ** 2, axis=-1) / np.where(d > 0, d, np.nan)
        prior_var = np.asarray(prior.var, dtype=float)
        d0 = np.where(np.isfinite(prior_var), np.asarray(prior.df, dtype=float), 0.0)
        s2 = np.where(d > 0, s2, 0.0)
        var = (d0 * scale * np.where(d0 > 0, prior_var, 0.0) + d * s2) / (d0 + d)
        df = np.where(var >= s2, d0 + d, d)  # never below the row's own variance: then its own t-test
        var = np.maximum(var, s2)
        se = np.sqrt(var / n)
        ok = (n > 1) & (se > 0)
        t = np.where(ok, mean / se, np.nan)
        df_ = np.where(ok, df, 1.0)
        p = np.where(ok, 2 * stats.t.sf(np.abs(t), df_), np.nan)
        q = stats.t.ppf(0.5 + level / 2, df_) * se
        q90 = stats.t.ppf(0.5 + tost_level / 2, df_) * se
        m = np.broadcast_to(np.asarray(margin, dtype=float), mean.shape)
        has = ok & np.isfinite(m) & (m > 0)
        p_tost = np.where(has, np.maximum(stats.t.sf((mean + m) / se, df_), stats.t.cdf((mean - m) / se, df_)),
                          np.nan)
    nan = ~ok
    return dict(n=n, mean=mean, sd=np.where(d > 0, np.sqrt(s2), np.nan), se=np.where(nan, np.nan, se),
                df=np.where(nan, np.nan, df), t=t, p=p, ci_low=np.where(nan, np.nan, mean - q),
                ci_high=np.where(nan, np.nan, mean + q), p_tost=p_tost, ci90_low=np.where(nan, np.nan, mean - q90),
                ci90_high=np.where(nan, np.nan, mean + q90))


def selection_level(p, alpha: float, fdr: bool, two_sided: bool = True) -> float:
    """The confidence level whose interval agrees with the decision "p_adj < alpha" row by row.

    Benjamini-Hochberg selects exactly the R rows with p <= R alpha / m, so the intervals at level 1 - R alpha / m
    (Benjamini & Yekutieli 2005, false-coverage-rate intervals) exclude the tested value exactly for the selected
    rows; with none selected, 1 - alpha / m. Without fdr: 1 - alpha. `two_sided=False` is for TOST, whose
    interval is the (1 - 2 a) one."""
    p = finite(p)
    a = alpha
    if fdr and len(p):
        adjusted = stats.false_discovery_control(p, method="bh")
        a = alpha * max(int((adjusted < alpha).sum()), 1) / len(p)
    return 1 - (1 if two_sided else 2) * a


def interval(x, level: float) -> tuple[float, float]:
    """The one-sample t-interval (scipy.stats.ttest_1samp) of the finite values at `level`; NaN below 2 values or
    without spread."""
    x = finite(x)
    if len(x) < 2 or x.std(ddof=1) == 0:
        return np.nan, np.nan
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(level)
    return float(ci.low), float(ci.high)
