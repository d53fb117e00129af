"""One verdict per data condition, chosen by one rule (`decide`, whose docstring is the rule as printed).

    regularizer_effects(effects, families, metrics) -> does each regularizer family move each metric measurably?
    decide(facts) -> (verdict, reason)            the rule, on one condition's facts
    verdicts(...) -> the verdict table            gathers the facts from the tables and calls `decide`
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from weightscape.names import DROPOUT, REGULARIZERS, WEIGHT_DECAY, nice

from .dose import BELOW, BEYOND, SYMBOL, format_level
from .seeds import SCOPE

NO_EFFECT = "no measurable effect (equivalent to baseline within the margin)"
INCONCLUSIVE = "inconclusive"


def like(family: str, about: str) -> str:
    """'like dropout (about p = 0.31)' / 'like weight decay (about lambda = 1.0e-03)'."""
    return f"like {nice(family)} (about {about})"


# ----------------------------------------------------------------------------------------------- regularizers
def regularizer_effects(effects: pd.DataFrame, families: dict, metrics, min_seeds: int = 3) -> pd.DataFrame:
    """Per regularizer family and metric: is the family's effect measurable at all, at the levels measured?

    Measurable = at least one of its levels moves the metric measurably (the `measurable` column of `effects`:
    the BH-adjusted across-seed t-test differs from 0 and the effect is not shown to lie within the margin),
    judged only with at least `min_seeds` seeds (below that: False, and the statement says why).
    Columns: scope, family, metric, n_levels, n_seeds, measurable, measurable_levels, strongest_condition,
    strongest_level, strongest_effect, strongest_in_noise, p_adj_min, statement.
    """
    rows = []
    for name in REGULARIZERS:
        fam = families.get(name)
        for metric in metrics:
            row = dict(scope=SCOPE, family=name, metric=metric, n_levels=0, n_seeds=0, measurable=False,
                       measurable_levels="", strongest_condition="", strongest_level=np.nan,
                       strongest_effect=np.nan, strongest_in_noise=np.nan, p_adj_min=np.nan,
                       statement=f"no {nice(name)} levels were measured, so {nice(metric)} cannot be compared "
                                 f"with {nice(name)}")
            part = effects[(effects["metric"] == metric) & effects["condition"].isin(fam.conditions)] if fam else []
            if len(part):
                level = dict(zip(fam.conditions, fam.levels))
                strong = part.loc[part["mean"].abs().idxmax()] if part["mean"].notna().any() else part.iloc[-1]
                hit = part[part["measurable"]]
                n = int(part["n_seeds"].min())
                row.update(n_levels=len(part), n_seeds=n, measurable=bool(len(hit)) and n >= min_seeds,
                           measurable_levels=",".join(format_level(name, level[c]) for c in hit["condition"]),
                           strongest_condition=strong["condition"], strongest_level=level[strong["condition"]],
                           strongest_effect=strong["mean"], strongest_in_noise=strong["effect_in_noise"],
                           p_adj_min=part["p_adj"].min())
                row["statement"] = _moves(name, metric, row, min_seeds)
            rows.append(row)
    return pd.DataFrame(rows)


def _moves(family: str, metric: str, row: dict, min_seeds: int) -> str:
    """The sentence of one regularizer_effects row."""
    if row["n_seeds"] < min_seeds:
        return (f"fewer than {min_seeds} seeds (n = {row['n_seeds']}): whether {nice(family)} moves {nice(metric)} "
                f"is not judged")
    if not row["measurable"]:
        return f"at these levels {nice(family)} does not move {nice(metric)} measurably"
    return (f"{nice(family)} moves {nice(metric)} measurably (strongest at {SYMBOL[family]} = "
            f"{format_level(family, row['strongest_level'])}: {row['strongest_effect']:+.3g}, "
            f"{row['strongest_in_noise']:+.3g} x the noise)")


# ----------------------------------------------------------------------------------------------- the rule
@dataclass(frozen=True)
class Facts:
    """What the rule reads about one condition (all decisions already made by the tests that produce them)."""

    n_seeds: int
    metrics: tuple  # the chosen metrics
    moved: tuple  # metrics the condition moves measurably (differs from 0, not shown within the margin)
    equivalent: tuple  # metrics on which its effect is equivalent to 0 within the margin (TOST)
    measurable: dict  # regularizer family -> metrics it moves measurably; a family absent from the grid is absent
    difference_ci: tuple = (np.nan, np.nan)  # 95 % CI of distance(weight decay) - distance(dropout)
    about: dict = field(default_factory=dict)  # regularizer family -> "p = 0.31" (the equivalent level)
    min_seeds: int = 3


def decide(f: Facts) -> tuple[str, str]:
    """The verdict of a data condition over the chosen spectral metrics. Every test is across seeds, at level
    alpha, on p-values Benjamini-Hochberg adjusted over all conditions and metrics (setting fdr, on by default);
    a metric is "moved measurably" when its effect differs from zero (t-test) and is not shown to lie within
    the margin.
    (1) With fewer seeds than the minimum (3 by default): "inconclusive".
    (2) If on every chosen metric the condition's effect is equivalent to zero (two one-sided t-tests: its
    90 % confidence interval lies inside plus or minus the margin): "no measurable effect (equivalent to
    baseline within the margin)".
    (3) If it moves no metric measurably: "inconclusive" (neither an effect nor its absence is shown).
    (4) If dropout or weight decay has no measured levels: "inconclusive".
    (5) Its distance to a family is the root-mean-square difference over the metrics, each divided by its
    seed-noise SD, to the nearest point of that family's monotone dose-response curve. It is nearer the dropout
    curve when the 95 % bootstrap interval (over seeds and layers) of its distance to the weight-decay curve
    minus its distance to the dropout curve lies above zero, nearer weight decay when it lies below zero;
    otherwise "inconclusive".
    (6) The nearer family must itself move measurably, at some measured level, every metric the condition
    moves measurably; otherwise "inconclusive".
    (7) Else "like dropout (about p = ...)" or "like weight decay (about lambda = ...)", at the level whose
    interpolated effect best matches the condition's (never beyond the measured levels).
    """
    if f.n_seeds < f.min_seeds:
        return INCONCLUSIVE, f"fewer than {f.min_seeds} seeds (n = {f.n_seeds})"
    if f.metrics and set(f.metrics) <= set(f.equivalent):
        return NO_EFFECT, "equivalent to 0 within the margin on every metric"
    if not f.moved:
        open_ = [m for m in f.metrics if m not in f.equivalent]
        return INCONCLUSIVE, ("no metric moves measurably, but equivalence within the margin is not shown on "
                              + ", ".join(map(nice, open_)))
    absent = [nice(r) for r in REGULARIZERS if r not in f.measurable]
    if absent:
        return INCONCLUSIVE, f"no {' or '.join(absent)} levels in the grid, so the two cannot be compared"
    lo, hi = f.difference_ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE, "the distance difference has no confidence interval"
    if lo <= 0 <= hi:
        return INCONCLUSIVE, (f"distances to the dropout and weight-decay curves do not separate (95 % CI of "
                              f"the difference {lo:+.2g} to {hi:+.2g} includes 0)")
    nearer = DROPOUT if lo > 0 else WEIGHT_DECAY
    lacking = [m for m in f.moved if m not in f.measurable[nearer]]
    if lacking:
        return INCONCLUSIVE, (f"nearer {nice(nearer)}, but {nice(nearer)} does not move "
                              f"{', '.join(map(nice, lacking))} measurably at these levels")
    return like(nearer, f.about.get(nearer, "?")), (f"moves {', '.join(map(nice, f.moved))}; nearer "
                                                    f"{nice(nearer)} (difference CI {lo:+.2g} to {hi:+.2g})")


#: the rule in plain words, for the summary's first paragraph
VERDICT_RULE = inspect.cleandoc(decide.__doc__)


def about(family: str, row) -> str:
    """'p = 0.31', 'p < 0.1' (below the smallest level), 'p >= 0.7' (at or beyond the largest)."""
    if row is None or not isinstance(row["position"], str):
        return f"{SYMBOL[family]} = ?"
    if row["position"] == BELOW:
        if not np.isfinite(row["level_ci_high"]):  # the bootstrap reaches past the largest level
            return f"{SYMBOL[family]} below the smallest level (CI unbounded)"
        return f"{SYMBOL[family]} < {format_level(family, row['level_ci_high'])}"
    op = ">=" if row["position"] == BEYOND else "="
    return f"{SYMBOL[family]} {op} {format_level(family, row['level'])}"


# ----------------------------------------------------------------------------------------------- the table
def verdicts(effects: pd.DataFrame, regularizers: pd.DataFrame, placement: pd.DataFrame,
             comparison: pd.DataFrame, conditions, metrics, min_seeds: int = 3) -> pd.DataFrame:
    """One row per condition in `conditions`: scope, condition, family, n_seeds, verdict, reason, moved,
    equivalent_on, level_dropout, level_weight_decay (the equivalent levels as text), difference, diff_ci_low,
    diff_ci_high. The verdict comes from `decide` only."""
    measurable = {}
    for name, part in regularizers[regularizers["n_levels"] > 0].groupby("family", sort=False):
        measurable[name] = tuple(part.loc[part["measurable"], "metric"])
    comp = comparison.set_index("condition") if len(comparison) else pd.DataFrame()
    rows = []
    for c in conditions:
        e = effects[(effects["condition"] == c) & effects["metric"].isin(metrics)]
        if e.empty:
            continue
        n = int(e["n_seeds"].min())
        pl = {r["regularizer"]: r for _, r in placement[placement["condition"] == c].iterrows()} if len(
            placement) else {}
        ab = {name: about(name, pl.get(name)) for name in measurable}
        ci = (comp.at[c, "diff_ci_low"], comp.at[c, "diff_ci_high"]) if c in comp.index else (np.nan, np.nan)
        facts = Facts(n_seeds=n, metrics=tuple(e["metric"]), moved=tuple(e.loc[e["measurable"], "metric"]),
                      equivalent=tuple(e.loc[e["equivalent"], "metric"]), measurable=measurable,
                      difference_ci=ci, about=ab, min_seeds=min_seeds)
        verdict, reason = decide(facts)
        rows.append(dict(scope=SCOPE, condition=c, family=e["family"].iat[0], n_seeds=n, verdict=verdict,
                         reason=reason, moved=",".join(facts.moved), equivalent_on=",".join(facts.equivalent),
                         level_dropout=ab.get(DROPOUT, ""), level_weight_decay=ab.get(WEIGHT_DECAY, ""),
                         difference=comp.at[c, "difference"] if c in comp.index else np.nan,
                         diff_ci_low=ci[0], diff_ci_high=ci[1]))
    return pd.DataFrame(rows)
