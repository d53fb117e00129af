"""The summary's one table and the margin-sensitivity table, from the verdicts and runs.csv.

    overview(verdicts, runs)   condition | family | verdict | equivalent dropout p | equivalent lambda | outcomes
    sensitivity(by_scale)      each condition's verdict at every margin multiple, and whether it depends on it
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from weightscape.names import BASELINE

from .inference import t_summary
from .seeds import SCOPE

#: run outcomes of the overview, in column order (mean and 95 % t-interval across seeds each)
OUTCOMES = ("id_accuracy", "ood_accuracy", "id_ece")
REFERENCE = "reference"  # the verdict column of the baseline's row


def outcome_summary(runs: pd.DataFrame, condition: str, outcome: str) -> dict:
    """Across seeds (per seed the mean over datasets/models): n, mean and 95 % t-interval of one outcome."""
    part = runs[runs["condition"] == condition]
    if outcome not in runs.columns or part.empty:
        return dict(n=0, mean=np.nan, ci_low=np.nan, ci_high=np.nan)
    per_seed = part.groupby("seed")[outcome].mean() if "seed" in part.columns else part[outcome]
    s = t_summary(per_seed.to_numpy(dtype=float))
    if s["n"] > 1 and not np.isfinite(s["ci_low"]):  # identical across seeds: the interval is the point
        s["ci_low"] = s["ci_high"] = s["mean"]
    return s


def overview(verdicts: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row for the baseline (verdict REFERENCE) and one per judged condition, in the verdicts' order.

    Columns: scope, condition, family, n_seeds, verdict, dropout, weight_decay (the equivalent strengths as
    printed), and for each of OUTCOMES: <outcome>, <outcome>_ci_low, <outcome>_ci_high.
    """
    rows = []
    base = dict(condition=BASELINE, family=BASELINE, verdict=REFERENCE, dropout="", weight_decay="")
    seeds = runs.loc[runs["condition"] == BASELINE, "seed"].nunique() if "seed" in runs.columns else 1
    for r in [dict(base, n_seeds=seeds)] + [dict(condition=v["condition"], family=v["family"], n_seeds=v["n_seeds"],
                                                 verdict=v["verdict"], dropout=v["level_dropout"],
                                                 weight_decay=v["level_weight_decay"])
                                            for _, v in verdicts.iterrows()]:
        row = dict(scope=SCOPE, **r)
        for outcome in OUTCOMES:
            s = outcome_summary(runs, r["condition"], outcome)
            row.update({outcome: s["mean"], f"{outcome}_ci_low": s["ci_low"], f"{outcome}_ci_high": s["ci_high"]})
        rows.append(row)
    columns = ["scope", "condition", "family", "n_seeds", "verdict", "dropout", "weight_decay"] + [
        f"{o}{suffix}" for o in OUTCOMES for suffix in ("", "_ci_low", "_ci_high")]
    return pd.DataFrame(rows, columns=columns)


def sensitivity(by_scale: dict[float, pd.DataFrame]) -> pd.DataFrame:
    """Columns: scope, condition, family, n_seeds, margin_<k>x (the verdict with every margin times k, for each k
    of `by_scale`), depends_on_margin (the verdicts differ)."""
    scales = sorted(by_scale)
    first = by_scale[scales[0]]
    out = first[["scope", "condition", "family", "n_seeds"]].copy()
    for k in scales:
        out[f"margin_{k:g}x"] = by_scale[k].set_index("condition")["verdict"].reindex(out["condition"]).to_numpy()
    cols = [f"margin_{k:g}x" for k in scales]
    out["depends_on_margin"] = out[cols].nunique(axis=1) > 1 if len(out) else pd.Series(dtype=bool)
    return out
