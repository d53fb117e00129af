"""The spectral effects beside what the runs did: how well each condition fits its training data, how much of the
effects that explains, and whether the effects predict accuracy, OOD accuracy and calibration.

    training_fit(runs)                 per condition: final training loss / accuracy minus the baseline's, paired
    confound(effects, fit)             per metric: the share of the across-condition spread training loss explains
    predictors(effects, runs)          per metric and outcome: rank correlation across conditions, with a verdict

A condition that fits its training data less (dropout does, strongly) moves the head's and other layers' spectra
for that reason alone; a "like dropout" verdict on a metric whose spread training loss explains could read "fits
the training data less" instead. Units: a condition's across-seed mean (its seeds averaged), so the conditions
are the observations of a correlation; intervals are Fisher-z intervals (Pearson: scipy's; Spearman: the
Bonett-Wright variance, claims.spearman).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from weightscape.names import BASELINE, LOWER_IS_BETTER

from .claims import spearman
from .inference import bh, t_summary
from .seeds import SCOPE

FIT = ("final_train_loss", "final_train_accuracy")
OUTCOMES = ("id_accuracy", "ood_accuracy", "id_ece")
#: |rho| below this is "not predictive" when the whole interval lies inside it (Cohen's small correlation)
NEGLIGIBLE_RHO = 0.3
EXPLAINED = 0.5  # R^2 at or above which training loss "explains" a metric's spread (its interval's low end)


def _paired_difference(runs: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per condition and seed: the run's value minus the same dataset/model/seed's baseline (mean over
    datasets/models per seed)."""
    key = [k for k in ("dataset", "model", "seed") if k in runs.columns]
    base = runs[runs["condition"] == BASELINE].set_index(key)[column]
    diff = runs[column].to_numpy(dtype=float) - base.reindex(pd.MultiIndex.from_frame(runs[key])
                                                             if len(key) > 1 else runs[key[0]]).to_numpy()
    return runs.assign(_diff=diff).groupby(["condition", "seed"], sort=False)["_diff"].mean().reset_index()


def training_fit(runs: pd.DataFrame) -> pd.DataFrame:
    """Per non-baseline condition and fit column: n_seeds, the condition's mean, the paired difference from the
    baseline with its 95 % t-interval and p (a plain paired t-test; no adjustment: it qualifies verdicts, it
    decides none)."""
    rows = []
    for column in [c for c in FIT if c in runs.columns and runs[c].notna().any()]:
        diff = _paired_difference(runs, column)
        for c, part in diff[diff["condition"] != BASELINE].groupby("condition", sort=False):
            s = t_summary(part["_diff"])
            rows.append(dict(scope=SCOPE, condition=c, quantity=column, n_seeds=s["n"],
                             value=float(runs.loc[runs["condition"] == c, column].mean()), difference=s["mean"],
                             ci_low=s["ci_low"], ci_high=s["ci_high"], p=s["p"]))
    return pd.DataFrame(rows, columns=["scope", "condition", "quantity", "n_seeds", "value", "difference", "ci_low",
                                       "ci_high", "p"])


def _pearson(x, y) -> dict:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = np.asarray(x)[ok], np.asarray(y)[ok]
    out = dict(n=len(x), r=np.nan, r_ci_low=np.nan, r_ci_high=np.nan)
    if len(x) >= 4 and np.ptp(x) > 0 and np.ptp(y) > 0:
        res = stats.pearsonr(x, y)
        ci = res.confidence_interval()
        out.update(r=float(res.statistic), r_ci_low=float(ci.low), r_ci_high=float(ci.high))
    return out


def confound(effects: pd.DataFrame, fit: pd.DataFrame) -> pd.DataFrame:
    """Per metric: across the non-baseline conditions, Pearson r (95 % Fisher-z interval) of the condition's
    mean effect with its mean training-loss difference, R^2 = r^2 with the interval's squared ends (0 when it
    spans 0), and explained (the R^2 interval's low end >= EXPLAINED)."""
    loss = fit[fit["quantity"] == "final_train_loss"].set_index("condition")["difference"]
    rows = []
    for metric, part in effects.groupby("metric", sort=False):
        x = loss.reindex(part["condition"]).to_numpy(dtype=float)
        p = _pearson(x, part["mean"].to_numpy(dtype=float))
        lo, hi = p["r_ci_low"], p["r_ci_high"]
        r2_low = 0.0 if lo <= 0 <= hi else min(lo ** 2, hi ** 2)
        rows.append(dict(scope=SCOPE, metric=metric, n_conditions=p["n"], n_seeds=int(part["n_seeds"].min()),
                         r=p["r"], r_ci_low=lo, r_ci_high=hi,
                         r2=p["r"] ** 2, r2_ci_low=r2_low, r2_ci_high=max(lo ** 2, hi ** 2) if np.isfinite(lo)
                         else np.nan, explained=bool(np.isfinite(lo) and r2_low >= EXPLAINED)))
    return pd.DataFrame(rows, columns=["scope", "metric", "n_conditions", "n_seeds", "r", "r_ci_low", "r_ci_high",
                                       "r2", "r2_ci_low", "r2_ci_high", "explained"])


def predictors(effects: pd.DataFrame, runs: pd.DataFrame, outcomes=OUTCOMES) -> pd.DataFrame:
    """Per (metric, outcome): Spearman rho across the non-baseline conditions between the condition's mean
    effect and its mean paired outcome difference (outcome minus the same seed's baseline), its interval at the
    level of the Benjamini-Hochberg decision (over all rows), p, p_adj, and a statement: predictive (the
    interval excludes 0), not predictive (the interval inside +-NEGLIGIBLE_RHO), inconclusive. `better`: the sign
    of rho that goes with a better outcome (ECE: lower is better)."""
    from .inference import selection_level

    cells = []
    for outcome in [o for o in outcomes if o in runs.columns]:
        diff = _paired_difference(runs, outcome).groupby("condition")["_diff"].mean()
        for metric, part in effects.groupby("metric", sort=False):
            x = part["mean"].to_numpy(dtype=float)
            y = diff.reindex(part["condition"]).to_numpy(dtype=float)
            cells.append((metric, outcome, x, y, int(part["n_seeds"].min())))
    first = [spearman(x, y)["spearman_p"] for _, _, x, y, _ in cells]
    level = selection_level(first, 0.05, fdr=True)
    rows = []
    for metric, outcome, x, y, n_seeds in cells:
        s = spearman(x, y, level)
        rows.append(dict(scope=SCOPE, metric=metric, outcome=outcome, n_conditions=s["n"], n_seeds=n_seeds,
                         rho=s["spearman_rho"],
                         ci_low=s["spearman_ci_low"], ci_high=s["spearman_ci_high"], ci_level=level,
                         p=s["spearman_p"]))
    table = pd.DataFrame(rows, columns=["scope", "metric", "outcome", "n_conditions", "n_seeds", "rho", "ci_low",
                                        "ci_high", "ci_level", "p"])
    table["p_adj"] = bh(table["p"])
    excludes = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    negligible = (table["ci_low"] > -NEGLIGIBLE_RHO) & (table["ci_high"] < NEGLIGIBLE_RHO)
    table["statement"] = np.where(excludes, "predictive", np.where(negligible, "not predictive", "inconclusive"))
    table["better"] = np.where(table["outcome"].isin(LOWER_IS_BETTER), "lower", "higher")
    return table
