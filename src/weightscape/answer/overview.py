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


#: how strongly a verdict decides: the lens a condition's overview row rests on is its most decided one
_STRENGTH = {"like dropout": 3, "like weight decay": 3, "detected, within the margin": 2, "no measurable effect": 2}
#: an undecided verdict whose effect lies beyond the margin on some metric: it outranks "within the margin" on
#: another lens, which it contradicts (the weights did change by more than the margin)
_BEYOND_UNDECIDED = 2.5


def strength(verdict: str, beyond_margin: str = "") -> float:
    """How much a lens's verdict decides: like > inconclusive with an effect beyond the margin > within the
    margin > inconclusive."""
    if verdict not in _STRENGTH and isinstance(beyond_margin, str) and beyond_margin:
        return _BEYOND_UNDECIDED
    return _STRENGTH.get(verdict, 0)


def resting_lens(by_lens: dict[str, tuple[str, str]]) -> str:
    """The lens a condition's verdict rests on, from {lens: (verdict, beyond_margin metrics)}: the one whose
    verdict decides most (`strength`), so that "within the margin" on W is never the headline while the update
    moves beyond the margin; on a tie the update's (Delta W) lens, which carries the change whole."""
    order = sorted(by_lens, key=lambda lens: (strength(*by_lens[lens]), lens != "W"), reverse=True)
    return order[0]


def overview(verdicts: dict[str, pd.DataFrame], runs: pd.DataFrame) -> pd.DataFrame:
    """One row for the baseline (verdict REFERENCE) and one per judged condition, in the verdicts' order.

    `verdicts`: {lens: verdicts table}. Columns: scope, condition, family, n_seeds, verdict (of the lens it rests
    on, `resting_lens`), lens (LENS_NAMES of that lens), other_lenses ("W: inconclusive" for the lenses whose
    verdict differs; "" when all agree), disagree (two lenses call it like different regularizers), dropout,
    weight_decay (the equivalent strengths of the resting lens, as printed), and for each of OUTCOMES:
    <outcome>, <outcome>_ci_low, <outcome>_ci_high.
    """
    from weightscape.lenses import LENS_NAMES

    tables = {lens: v.set_index("condition") for lens, v in verdicts.items() if len(v)}
    order = list(dict.fromkeys(c for v in tables.values() for c in v.index))
    rows = []
    seeds = runs.loc[runs["condition"] == BASELINE, "seed"].nunique() if "seed" in runs.columns else 1
    rows.append(dict(condition=BASELINE, family=BASELINE, n_seeds=seeds, verdict=REFERENCE, lens="",
                     other_lenses="", disagree=False, dropout="", weight_decay=""))
    for c in order:
        by_lens = {lens: v.at[c, "verdict"] for lens, v in tables.items() if c in v.index}
        lens = resting_lens({k: (x, tables[k].at[c, "beyond_margin"] if "beyond_margin" in tables[k] else "")
                             for k, x in by_lens.items()})
        v = tables[lens].loc[c]
        likes = {x for x in by_lens.values() if x.startswith("like")}
        rows.append(dict(condition=c, family=v["family"], n_seeds=int(v["n_seeds"]), verdict=v["verdict"],
                         lens=LENS_NAMES.get(lens, lens), disagree=len(likes) > 1,
                         other_lenses="; ".join(f"{LENS_NAMES.get(k, k)}: {x}" for k, x in by_lens.items()
                                                if x != v["verdict"]),
                         dropout=v["level_dropout"], weight_decay=v["level_weight_decay"]))
    for row in rows:
        row["scope"] = SCOPE
        for outcome in OUTCOMES:
            s = outcome_summary(runs, row["condition"], outcome)
            row.update({outcome: s["mean"], f"{outcome}_ci_low": s["ci_low"], f"{outcome}_ci_high": s["ci_high"]})
    columns = ["scope", "condition", "family", "n_seeds", "verdict", "lens", "other_lenses", "disagree", "dropout",
               "weight_decay"] + [f"{o}{suffix}" for o in OUTCOMES for suffix in ("", "_ci_low", "_ci_high")]
    return pd.DataFrame(rows, columns=columns)


def sensitivity(by_scale: dict[float, pd.DataFrame]) -> pd.DataFrame:
    """Columns: scope, condition, family, n_seeds, margin_<k>x (the verdict with every margin times k, for each k
    of `by_scale`), depends_on_margin (the verdicts differ)."""
    scales = sorted(by_scale)
    first = by_scale[scales[0]]
    out = first[["scope", "condition", "family", "n_seeds"]].copy().reset_index(drop=True)
    for k in scales:
        out[f"margin_{k:g}x"] = by_scale[k].set_index("condition")["verdict"].reindex(out["condition"]).to_numpy()
    cols = [f"margin_{k:g}x" for k in scales]
    out["depends_on_margin"] = out[cols].nunique(axis=1) > 1 if len(out) else pd.Series(dtype=bool)
    return out
