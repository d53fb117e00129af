"""Power of the undecided verdicts: what the current seeds can detect, and how many seeds would decide.

For every metric of an inconclusive condition, at its observed paired mean and SD (the plain paired t-test, whose
power scipy.stats.nct gives exactly under normal seed noise; the moderated test is at least as powerful):
    mde_d_z, mde        the smallest effect detectable against 0 with 80 % power at the current seeds
    to_detect           seeds for the observed effect to be detected against 0
    to_decide           seeds for it to be shown beyond the margin (|mean| > margin) or within it (|mean| < margin,
                        two one-sided tests; power by the Bonferroni bound P(both) >= P(one) + P(other) - 1)
A condition is decided by its first metric beyond the margin or by all of its metrics within it, so its seeds
needed is the smaller of min(to_decide over metrics beyond) and max(to_decide over metrics within).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .seeds import BEYOND_MARGIN, SCOPE
from .verdict import INCONCLUSIVE

ALREADY = "already beyond the margin"

POWER = 0.8
MAX_SEEDS = 1000  # beyond this a number of seeds is reported as "more than"


def _power_two_sided(d: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample t-test at standardised effect d with n seeds."""
    if n < 2:
        return 0.0
    df, nc = n - 1, abs(d) * np.sqrt(n)
    q = stats.t.ppf(1 - alpha / 2, df)
    # far in the tails scipy's noncentral t can return NaN for a probability that is 1 (upper) or 0 (lower)
    return float(np.nan_to_num(stats.nct.sf(q, df, nc), nan=1.0) + np.nan_to_num(stats.nct.cdf(-q, df, nc), nan=0.0))


def _power_one_sided(d: float, n: int, alpha: float) -> float:
    """Power of a one-sided t-test (H1: the shifted mean > 0) at standardised effect d > 0."""
    if n < 2 or d <= 0:
        return 0.0
    return float(np.nan_to_num(stats.nct.sf(stats.t.ppf(1 - alpha, n - 1), n - 1, d * np.sqrt(n)), nan=1.0))


def _power_tost(mean: float, sd: float, margin: float, n: int, alpha: float) -> float:
    low = _power_one_sided((mean + margin) / sd, n, alpha)
    high = _power_one_sided((margin - mean) / sd, n, alpha)
    return max(low + high - 1, 0.0)


def seeds_for(power_at, start: int = 2) -> float:
    """The smallest n >= start with power_at(n) >= POWER (inf beyond MAX_SEEDS)."""
    n = start
    while n <= MAX_SEEDS:
        if power_at(n) >= POWER:
            return float(n)
        n = n + 1 if n < 50 else int(n * 1.1)
    return np.inf


def mde_d_z(n: int, alpha: float) -> float:
    """The standardised effect detected with POWER at n seeds (two-sided t-test)."""
    if n < 2:
        return np.inf
    return float(optimize.brentq(lambda d: _power_two_sided(d, n, alpha) - POWER, 1e-6, 50.0))


POWER_COLUMNS = ["scope", "condition", "family", "metric", "n_seeds", "mean", "sd", "d_z", "margin", "state",
                 "mde_d_z", "mde", "to_detect", "to_decide", "decides_by"]


def power_table(effects: pd.DataFrame, verdicts: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """One row per metric of every inconclusive verdict (columns POWER_COLUMNS; decides_by: "beyond the margin"
    or "within the margin")."""
    undecided = set(verdicts.loc[verdicts["verdict"] == INCONCLUSIVE, "condition"])
    rows = []
    for _, e in effects[effects["condition"].isin(undecided)].iterrows():
        n, mean, sd, margin = int(e["n_seeds"]), e["mean"], e["sd"], e["margin"]
        row = dict(scope=SCOPE, condition=e["condition"], family=e["family"], metric=e["metric"], n_seeds=n,
                   mean=mean, sd=sd, d_z=e["d_z"], margin=margin, state=e["state"], mde_d_z=mde_d_z(n, alpha))
        row["mde"] = row["mde_d_z"] * sd
        if not (np.isfinite(sd) and sd > 0):
            rows.append(dict(row, to_detect=np.nan, to_decide=np.nan, decides_by=""))
            continue
        row["to_detect"] = seeds_for(lambda k: _power_two_sided(mean / sd, k, alpha))
        if abs(mean) > margin:
            row.update(decides_by="beyond the margin",
                       to_decide=seeds_for(lambda k: _power_one_sided((abs(mean) - margin) / sd, k, alpha / 2)))
        else:
            row.update(decides_by="within the margin",
                       to_decide=seeds_for(lambda k: _power_tost(mean, sd, margin, k, alpha)))
        rows.append(row)
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


def seeds_to_decide(power: pd.DataFrame) -> pd.DataFrame:
    """Per condition: seeds (total) that would decide it at the observed effects, and how. Columns: condition,
    n_seeds, seeds_needed, more_seeds, decides_by, metric (the metric beyond the margin that decides first, or
    the metric within it that decides last). A condition with an effect already shown beyond the margin is held
    up by the curve tests, which this table does not model: decides_by ALREADY, seeds NaN."""
    rows = []
    for c, part in power.groupby("condition", sort=False):
        n = int(part["n_seeds"].min())
        if (part["state"] == BEYOND_MARGIN).any():  # the curve tests hold it up, not its size against the margin
            rows.append(dict(condition=c, n_seeds=n, seeds_needed=np.nan, more_seeds=np.nan,
                             decides_by=ALREADY, metric=",".join(part.loc[part["state"] == BEYOND_MARGIN, "metric"])))
            continue
        beyond = part[part["decides_by"] == "beyond the margin"]
        within = part[part["decides_by"] == "within the margin"]
        best = (np.inf, "", "")
        if len(beyond):
            r = beyond.loc[beyond["to_decide"].idxmin()] if beyond["to_decide"].notna().any() else beyond.iloc[0]
            best = (r["to_decide"], "beyond the margin", r["metric"])
        if len(within) == len(part) and within["to_decide"].notna().all():
            r = within.loc[within["to_decide"].idxmax()]
            if r["to_decide"] < best[0]:
                best = (r["to_decide"], "within the margin", r["metric"])
        rows.append(dict(condition=c, n_seeds=n, seeds_needed=best[0], more_seeds=max(best[0] - n, 0),
                         decides_by=best[1], metric=best[2]))
    return pd.DataFrame(rows, columns=["condition", "n_seeds", "seeds_needed", "more_seeds", "decides_by", "metric"])
