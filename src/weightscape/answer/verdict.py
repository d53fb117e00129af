"""One verdict per data condition, in one of five states, chosen by one rule (`decide`).

    regularizer_moves(effects, families, metrics) -> which metrics each regularizer family moves, at which levels
    decide(facts) -> (verdict, reason)            the rule, on one condition's facts
    verdicts(...) -> the verdict table            gathers the facts from the tables and calls `decide`
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from weightscape.names import DROPOUT, REGULARIZERS, WEIGHT_DECAY, nice

from .dose import BEYOND, OFF_CURVE, SYMBOL, equivalence_text, format_level
from .seeds import BEYOND_MARGIN, DETECTED, DETECTED_SMALL, SCOPE, WITHIN_MARGIN

LIKE = {DROPOUT: "like dropout", WEIGHT_DECAY: "like weight decay"}
SMALL = "detected, within the margin"
NO_EFFECT = "no measurable effect"
INCONCLUSIVE = "inconclusive"
#: the five states of a verdict, in the order the summary explains them
STATES = (LIKE[DROPOUT], LIKE[WEIGHT_DECAY], SMALL, NO_EFFECT, INCONCLUSIVE)

#: the rule in plain words (the summary's "How to read this"); `decide` implements it step by step
RULE = (
    "Each data condition gets one of five verdicts, from across-seed tests of its paired effect (its change from "
    "pretrained minus the same seed's baseline change, averaged over layers) on each metric: "
    "**like dropout** / **like weight decay**: it moves some metric beyond the equivalence margin (its interval "
    "lies outside plus or minus the margin), at some point of that regularizer's dose-response curve it is "
    "equivalent within the margin on every metric it moves that far (two one-sided tests on the seed-paired "
    "differences) and not rejected on the others, and it is equivalent to no point of the other regularizer's "
    "curve, every point of which is rejected (seed-level t-tests, Bonferroni over metrics); "
    "**detected, within the margin**: a real but small effect - detected on some metric, and within the margin "
    "on every metric; "
    "**no measurable effect**: detected on no metric and shown within the margin on every metric; "
    "**inconclusive**: anything else, with the reason. Detection is Benjamini-Hochberg adjusted over all "
    "conditions and metrics, and every interval printed is the interval of the test that decided. "
    "Margins are fixed before the data (stats.equivalence_margin), never from the regularizers' own effects.")


# ----------------------------------------------------------------------------------------------- regularizers
def regularizer_moves(effects: pd.DataFrame, families: dict, metrics, min_seeds: int = 3) -> pd.DataFrame:
    """Per regularizer family and metric: does any of its measured levels move the metric (detected)?

    Judged only with at least `min_seeds` seeds (below that: False, and the statement says why).
    Columns: scope, family, metric, n_levels, n_seeds, moves, detected_levels, beyond_levels (levels whose effect
    lies beyond the margin), strongest_condition, strongest_level, strongest_effect, strongest_ci_low,
    strongest_ci_high, strongest_d_z, statement.
    """
    rows = []
    for name in REGULARIZERS:
        fam = families.get(name)
        for metric in metrics:
            row = dict(scope=SCOPE, family=name, metric=metric, n_levels=0, n_seeds=0, moves=False,
                       detected_levels="", beyond_levels="", strongest_condition="", strongest_level=np.nan,
                       strongest_effect=np.nan, strongest_ci_low=np.nan, strongest_ci_high=np.nan,
                       strongest_d_z=np.nan,
                       statement=f"no {nice(name)} levels were measured, so {nice(metric)} cannot be compared "
                                 f"with {nice(name)}")
            part = effects[(effects["metric"] == metric) & effects["condition"].isin(fam.conditions)] if fam else []
            if len(part):
                level = dict(zip(fam.conditions, fam.levels))
                strong = part.loc[part["mean"].abs().idxmax()] if part["mean"].notna().any() else part.iloc[-1]
                n = int(part["n_seeds"].min())
                levels = (lambda rows: ", ".join(format_level(name, level[c]) for c in rows["condition"]))
                row.update(n_levels=len(part), n_seeds=n, moves=bool(part["detected"].any()) and n >= min_seeds,
                           detected_levels=levels(part[part["detected"]]),
                           beyond_levels=levels(part[part["beyond_margin"]]),
                           strongest_condition=strong["condition"], strongest_level=level[strong["condition"]],
                           strongest_effect=strong["mean"], strongest_ci_low=strong["ci_low"],
                           strongest_ci_high=strong["ci_high"], strongest_d_z=strong["d_z"])
                row["statement"] = _moves(name, metric, row, min_seeds)
            rows.append(row)
    return pd.DataFrame(rows)


def _moves(family: str, metric: str, row: dict, min_seeds: int) -> str:
    """The sentence of one regularizer_moves row; its interval is the strongest level's decision interval."""
    if row["n_seeds"] < min_seeds:
        return (f"fewer than {min_seeds} seeds (n = {row['n_seeds']}): whether {nice(family)} moves {nice(metric)} "
                f"is not judged")
    s = SYMBOL[family]
    strongest = (f"{s} = {format_level(family, row['strongest_level'])}: {row['strongest_effect']:+.3g}, CI "
                 f"{row['strongest_ci_low']:+.3g} to {row['strongest_ci_high']:+.3g}, d_z {row['strongest_d_z']:+.2g}")
    if not row["moves"]:
        return f"no {nice(family)} level is detected on {nice(metric)} (strongest {strongest})"
    return f"{nice(family)} moves {nice(metric)}: detected at {s} = {row['detected_levels']} (strongest {strongest})"


# ----------------------------------------------------------------------------------------------- the rule
@dataclass(frozen=True)
class Facts:
    """What the rule reads about one condition (every decision already made by the tests that produce it)."""

    n_seeds: int
    states: dict  # metric -> seeds.state of the condition's effect
    present: tuple = ()  # the regularizer families in the grid
    on_curve: dict = field(default_factory=dict)  # family -> equivalent within the margin to a point of its curve
    off_curve: dict = field(default_factory=dict)  # family -> every point of its curve rejected
    text: dict = field(default_factory=dict)  # family -> the placement's text
    min_seeds: int = 3


def _names(metrics) -> str:
    return ", ".join(nice(m) for m in metrics)


def decide(f: Facts) -> tuple[str, str]:
    """The verdict (one of STATES) and its reason; the steps are those of RULE, in order."""
    if f.n_seeds < f.min_seeds:
        return INCONCLUSIVE, f"fewer than {f.min_seeds} seeds (n = {f.n_seeds})"
    detected = [m for m, s in f.states.items() if s in (BEYOND_MARGIN, DETECTED, DETECTED_SMALL)]
    if f.states and all(s in (DETECTED_SMALL, WITHIN_MARGIN) for s in f.states.values()):
        if detected:
            return SMALL, f"detected on {_names(detected)}; within the margin on every metric"
        return NO_EFFECT, "none detected; within the margin on every metric"
    beyond = [m for m, s in f.states.items() if s == BEYOND_MARGIN]
    if not beyond:
        if detected:
            return INCONCLUSIVE, f"detected on {_names(detected)}, but not shown to exceed the margin"
        open_ = [m for m, s in f.states.items() if s != WITHIN_MARGIN]
        return INCONCLUSIVE, f"none detected, and within the margin not shown on {_names(open_)}"
    absent = [nice(r) for r in REGULARIZERS if r not in f.present]
    if absent:
        return INCONCLUSIVE, f"no {' or '.join(absent)} levels in the grid, so the two cannot be compared"
    like = [r for r in REGULARIZERS if f.on_curve.get(r)
            and all(f.off_curve.get(o) and not f.on_curve.get(o) for o in REGULARIZERS if o != r)]
    moves = f"moves {_names(beyond)} beyond the margin"
    if len(like) == 1:
        r = like[0]
        other = [o for o in REGULARIZERS if o != r][0]
        return LIKE[r], (f"{moves}; on the {nice(r)} curve ({f.text[r]}); every point of the {nice(other)} curve "
                         f"rejected")
    on = [r for r in REGULARIZERS if f.on_curve.get(r)]
    where = "; ".join(f"{nice(r)}: {f.text[r]}" for r in REGULARIZERS)
    if len(on) == 2:
        return INCONCLUSIVE, f"{moves}; equivalent within the margin to points of both curves ({where})"
    if on:
        other = [o for o in REGULARIZERS if o != on[0]][0]
        return INCONCLUSIVE, (f"{moves}; on the {nice(on[0])} curve, but the {nice(other)} curve is not rejected "
                              f"everywhere ({where})")
    if all(f.off_curve.get(r) for r in REGULARIZERS):
        return INCONCLUSIVE, f"{moves}; off both curves: no level of either regularizer matches ({where})"
    return INCONCLUSIVE, f"{moves}; not shown equivalent to either curve within the margin ({where})"


# ----------------------------------------------------------------------------------------------- the table
def _level_text(family: str, row: pd.Series) -> str:
    """The equivalent strength as printed for one condition and regularizer: the confidence set's text, or -
    where the condition is equivalent within the margin to the curve although its confidence set is empty
    (a 95 % set misses in 5 % of draws) - the levels where it is equivalent."""
    if row["on_curve"] and row["position"] in (OFF_CURVE, BEYOND):
        return equivalence_text(family, row["equivalent_low"], row["equivalent_high"])
    return row["text"]


VERDICT_COLUMNS = ["scope", "condition", "family", "n_seeds", "verdict", "reason", "detected", "beyond_margin",
                   "within_margin", "level_dropout", "level_weight_decay"]


def verdicts(effects: pd.DataFrame, placement: pd.DataFrame, families: dict, conditions, min_seeds: int = 3) -> \
        pd.DataFrame:
    """One row per condition in `conditions`: scope, condition, family, n_seeds, verdict, reason, detected,
    beyond_margin, within_margin (metrics in that state, comma-separated), level_dropout, level_weight_decay (the
    placements' texts). The verdict comes from `decide` only."""
    pl = placement.set_index(["condition", "regularizer"]) if len(placement) else pd.DataFrame()
    rows = []
    for c in conditions:
        e = effects[effects["condition"] == c]
        if e.empty:
            continue
        n = int(e["n_seeds"].min())
        got = {r: pl.loc[(c, r)] for r in families if (c, r) in pl.index}
        facts = Facts(n_seeds=n, states=dict(zip(e["metric"], e["state"])), present=tuple(families),
                      on_curve={r: bool(g["on_curve"]) for r, g in got.items()},
                      off_curve={r: bool(g["off_curve"]) for r, g in got.items()},
                      text={r: _level_text(r, g) for r, g in got.items()}, min_seeds=min_seeds)
        verdict, reason = decide(facts)
        rows.append(dict(scope=SCOPE, condition=c, family=e["family"].iat[0], n_seeds=n, verdict=verdict,
                         reason=reason, detected=",".join(e.loc[e["detected"], "metric"]),
                         beyond_margin=",".join(e.loc[e["beyond_margin"], "metric"]),
                         within_margin=",".join(e.loc[e["equivalent"], "metric"]),
                         level_dropout=facts.text.get(DROPOUT, ""),
                         level_weight_decay=facts.text.get(WEIGHT_DECAY, "")))
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)
