"""Dose-response of the regularizers and the equivalent strength of each data condition, by seed-level tests.

Curves. A regularizer family (dropout on its p, weight decay on log10 lambda) is known at its measured levels, per
seed: R(level, s, m) = E(level's condition, s, m). Between measured levels the curve is linear in the axis; below
the smallest level it runs straight from the origin (no regularization: E = 0 by definition of the paired effect) to
the smallest level; beyond the largest level there is no curve (never extrapolated). Interpolation is done per seed,
so a point of the curve is a per-seed value like any condition's.

Equivalent strength, by inverting a seed-level test over the curve: at every curve point g the paired differences
D(s, m) = E(condition, s, m) - R(g, s, m) are tested against 0 with the moderated t-test of `inference` (the metric's
variance prior, scaled to the point: Family.variance_scale), on every chosen metric, Bonferroni-adjusted over the
metrics. The confidence set is the points not rejected: valid with 3 seeds, one set for all metrics (a metric the
regularizer does not move cannot place a condition, but it can show that the condition is off the curve). The set's
ends are the interval (0 when it reaches the origin, inf when it reaches the largest level: stronger levels were not
measured); the point estimate is the point of the set nearest the condition's mean effect, metrics scaled by their
paired noise. An empty set is "off the curve" - or "beyond the largest level" when the condition overshoots the
curve's end in the curve's own direction.

Equivalence to the curve (the verdict's "on the curve"): some point g where, on every metric the condition moves
beyond the margin, the 90 % interval of D lies inside +-margin (TOST), and on the other metrics D is not rejected
(the effects there are small or unresolved, and a large difference would still be rejected).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from weightscape.names import DROPOUT, REGULARIZERS, WEIGHT_DECAY

from .inference import moderated_tests
from .seeds import SCOPE, Cube, nanmean, prior_of

LOG_AXIS = frozenset({WEIGHT_DECAY})  # families whose level axis is log10
BELOW, WITHIN, AT_END = "below the smallest level", "within the measured levels", "at the largest level"
BEYOND, OFF_CURVE, NOT_PLACED = "beyond the largest level", "off the curve", "not placed"
SYMBOL = {DROPOUT: "p", WEIGHT_DECAY: "lambda"}
POINTS_PER_SEGMENT = 24


# ----------------------------------------------------------------------------------------------- levels
def condition_levels(runs: pd.DataFrame) -> pd.Series:
    """condition -> level (dropout p, weight decay lambda, ...) from runs.csv's `level` column."""
    missing = sorted({"condition", "level"} - set(runs.columns))
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}; the dose-response needs each level")
    lv = runs.dropna(subset=["level"]).drop_duplicates("condition").set_index("condition")["level"]
    return lv.astype(float)


def format_level(family: str, level: float) -> str:
    """0.31 for dropout, 1.0e-03 for weight decay."""
    return f"{level:.1e}" if family in LOG_AXIS else f"{level:.2f}"


# ----------------------------------------------------------------------------------------------- families
@dataclass
class Family:
    """One regularizer family's measured levels (sorted) and the points of its curve.

    weights (G, K + 1): each curve point as weights over [origin, level 1 .. level K]; segment (G,): -1 on the
    segment from the origin, else the index of the measured level the point lies at or above; level (G,): the
    point's level (NaN on the origin segment, where a level has no value on a log axis)."""

    name: str
    conditions: list
    idx: np.ndarray  # cube indices of the levels
    levels: np.ndarray
    x: np.ndarray  # axis values (log10 for weight decay)
    weights: np.ndarray
    segment: np.ndarray
    level: np.ndarray

    @property
    def variance_scale(self) -> np.ndarray:
        """(G,) the variance of condition minus curve point relative to a paired effect's, for runs of equal own
        noise: c - sum_k w_k x_k - (1 - sum_k w_k) baseline has (1 + sum w_k^2 + (1 - sum w_k)^2) / 2 times the
        variance of a paired effect c - baseline (1 at a measured level and at the origin, 3/4 halfway)."""
        w = self.weights[:, 1:]
        return (1 + (w ** 2).sum(axis=1) + (1 - w.sum(axis=1)) ** 2) / 2

    def curve(self, E: np.ndarray) -> np.ndarray:
        """(G, S, N) curve values per seed from per-seed effects E (C, S, N)."""
        values = np.concatenate([np.zeros((1,) + E.shape[1:]), E[self.idx]])  # origin + levels
        return np.einsum("gk,ksn->gsn", self.weights, values)


def _points(x: np.ndarray, log_axis: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Curve points: the origin segment and each measured segment, POINTS_PER_SEGMENT each, measured levels exact."""
    k = len(x)
    w = np.linspace(0.0, 1.0, POINTS_PER_SEGMENT + 1)[:-1]
    weights, segment, level = [], [], []
    for j in range(-1, k - 1):  # j = -1: origin -> level 0; else level j -> level j + 1
        for a in w:
            row = np.zeros(k + 1)
            row[j + 1], row[j + 2] = 1 - a, a
            weights.append(row)
            segment.append(j)
            value = x[j] + a * (x[j + 1] - x[j]) if j >= 0 else np.nan
            level.append(np.nan if j < 0 else 10 ** value if log_axis else value)
    last = np.zeros(k + 1)
    last[k] = 1.0
    weights.append(last)
    segment.append(k - 1)
    level.append(10 ** x[-1] if log_axis else x[-1])
    return np.array(weights), np.array(segment), np.array(level, dtype=float)


def regularizer_families(cube: Cube, levels: pd.Series) -> dict[str, Family]:
    """The dropout / weight-decay families present in `cube` with a usable level (> 0) per condition."""
    out = {}
    for name in REGULARIZERS:
        conds = [c for c in cube.of_family(name) if np.isfinite(levels.get(c, np.nan)) and levels.get(c) > 0]
        if not conds:
            continue
        conds.sort(key=lambda c: levels[c])
        lv = np.array([levels[c] for c in conds], dtype=float)
        x = np.log10(lv) if name in LOG_AXIS else lv
        weights, segment, level = _points(x, name in LOG_AXIS)
        out[name] = Family(name, conds, np.array([cube.index(c) for c in conds]), lv, x, weights, segment, level)
    return out


# ----------------------------------------------------------------------------------------------- curves table
def dose_curves(effects: pd.DataFrame, families: dict[str, Family], metrics, moves: pd.DataFrame) -> pd.DataFrame:
    """The figure's table: one row per (regularizer family, metric, measured level).

    Columns: scope, family, metric, condition, level, x (the axis value), axis ("log10" | "linear"), n_seeds,
    effect (across-seed mean), ci_low, ci_high and ci_level (the effects table's decision interval), d_z, state,
    moves (whether the family moves the metric at any level: only then is the metric's curve drawn as a curve).
    """
    eff = effects.set_index(["condition", "metric"])
    moving = moves.set_index(["family", "metric"])["moves"] if len(moves) else pd.Series(dtype=bool)
    rows = []
    for fam in families.values():
        for metric in metrics:
            for k, c in enumerate(fam.conditions):
                r = eff.loc[(c, metric)]
                rows.append(dict(scope=SCOPE, family=fam.name, metric=metric, condition=c, level=fam.levels[k],
                                 x=fam.x[k], axis="log10" if fam.name in LOG_AXIS else "linear",
                                 n_seeds=r["n_seeds"], effect=r["mean"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                                 ci_level=r["ci_level"], d_z=r["d_z"], state=r["state"],
                                 moves=bool(moving.get((fam.name, metric), False))))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- placement
PLACEMENT_COLUMNS = ["scope", "condition", "family", "regularizer", "metrics", "n_seeds", "placed", "position",
                     "level", "level_ci_low", "level_ci_high", "text", "on_curve", "off_curve",
                     "equivalent_low", "equivalent_high", "reason"]


def _level_at(fam: Family, g: int, bound: str = "") -> float:
    """A curve point's level; for an interval `bound`: "low" on the origin segment = 0.0 (as weak as none),
    "high" on the origin segment = the smallest level, "high" at the last point = inf (not measured beyond)."""
    if fam.segment[g] < 0:
        return {"low": 0.0, "high": float(fam.levels[0])}.get(bound, np.nan)
    if bound == "high" and g == len(fam.level) - 1:
        return np.inf
    return float(fam.level[g])


def placement_text(family: str, position: str, level: float, low: float, high: float, why: str = "") -> str:
    """The equivalent strength as printed: 'p = 0.42 (0.30 to 0.55)', 'p < 0.30', 'lambda >= 1.0e-04',
    'compatible with every level', 'off the curve', 'beyond the largest level (p > 0.70)', 'not placed: ...'.
    A level is printed as a point only when both ends of its interval are bounded."""
    s, f = SYMBOL.get(family, "level"), (lambda v: format_level(family, v))
    if position == NOT_PLACED:
        return f"not placed: {why}" if why else "not placed"
    if position == OFF_CURVE:
        return "off the curve"
    if position == BEYOND:
        return f"beyond the largest level ({s} > {f(low)})"
    if low == 0 and not np.isfinite(high):
        return "compatible with every level"
    if low == 0:
        return f"{s} < {f(high)}"
    if not np.isfinite(high):
        return f"{s} >= {f(low)}"
    return f"{s} = {f(level)} ({f(low)} to {f(high)})"


def _curve_tests(D: np.ndarray, fam: Family, metrics, prior: dict, margin: np.ndarray, family: str) -> dict:
    """Moderated seed-level tests of D (G, S, N) per metric, each with the prior of a difference of a `family`
    condition and a curve point (seeds.prior_of) and the points' variance scale: arrays (G, N) of mean, p and
    p_tost."""
    out = {k: np.full((D.shape[0], len(metrics)), np.nan) for k in ("mean", "p", "p_tost")}
    for j, m in enumerate(metrics):
        r = moderated_tests(D[:, :, j], prior_of(prior[m], family, fam.name), margin[j], scale=fam.variance_scale)
        for k in out:
            out[k][:, j] = r[k]
    return out


def equivalence_text(family: str, low: float, high: float) -> str:
    """'p 0.41 to 0.62 (within the margin)': the levels whose curve point the condition is equivalent to."""
    s, f = SYMBOL.get(family, "level"), (lambda v: format_level(family, v))
    lo = "below the smallest level" if low == 0 else f(low)
    hi = "the largest level or beyond" if not np.isfinite(high) else f(high)
    return f"{s} {lo} to {hi} (within the margin)"


def placements(cube: Cube, families: dict[str, Family], moves: pd.DataFrame, effects: pd.DataFrame, noise_sd,
               targets, prior: dict, alpha: float = 0.05) -> pd.DataFrame:
    """Equivalent strength of each target condition on each regularizer present, and whether it is on the curve.

    `moves`: verdict.regularizer_moves (a family that moves no metric places nothing); `effects`: seeds.effects
    (the metrics a condition moves beyond the margin, and the margins); `noise_sd` (metric -> paired noise)
    scales metrics for the point estimate; `prior`: seeds.priors (the moderated t-tests').
    Columns: scope, condition, family, regularizer, metrics (that the regularizer moves), n_seeds, placed, position
    (BELOW | WITHIN | AT_END | BEYOND | OFF_CURVE | NOT_PLACED), level (the point estimate; NaN below the smallest
    level, where a level has no value, and where nothing is placed), level_ci_low, level_ci_high (the confidence
    set's ends: 0.0 = reaches the origin, inf = reaches the largest level), text (`placement_text`), on_curve
    (equivalent within the margin to some point of the curve, as the verdict reads it; computed also where
    nothing is placed), off_curve (every point of the curve rejected: judged also where nothing is placed),
    equivalent_low / equivalent_high (the levels where it is equivalent: ends as for the CI), reason.
    """
    E = cube.seed_means("relative")
    metrics = list(cube.metrics)
    scale = np.array([noise_sd.get(m, np.nan) for m in metrics], dtype=float)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)
    eff = effects.set_index(["condition", "metric"])
    moved_by = moves.set_index(["family", "metric"])["moves"] if len(moves) else pd.Series(dtype=bool)
    moving = {f: [m for m in metrics if bool(moved_by.get((f, m), False))] for f in families}
    bonferroni = alpha / len(metrics)
    rows = []
    for name, fam in families.items():
        C = fam.curve(E)  # (G, S, N)
        for c in [t for t in targets if t in cube.conditions]:
            e = eff.loc[c].reindex(metrics)
            moved = e["beyond_margin"].fillna(False).to_numpy(dtype=bool)
            margin = e["margin"].to_numpy(dtype=float)
            D = E[cube.index(c)][None] - C  # (G, S, N)
            tests = _curve_tests(D, fam, metrics, prior, margin, cube.family[c])
            n = int(np.isfinite(E[cube.index(c)]).all(axis=1).sum())
            compatible = np.all(np.nan_to_num(tests["p"], nan=1.0) >= bonferroni, axis=1)
            elsewhere = np.all(np.where(moved, True, np.nan_to_num(tests["p"], nan=1.0) >= bonferroni), axis=1)
            equivalent = np.all(np.where(moved, np.nan_to_num(tests["p_tost"], nan=1.0) < alpha, True), axis=1)
            on = equivalent & elsewhere & moved.any() & (n >= 2)
            row = dict(scope=SCOPE, condition=c, family=cube.family[c], regularizer=name,
                       metrics=",".join(moving[name]), n_seeds=n, placed=bool(moving[name]) and n >= 2,
                       on_curve=bool(on.any()), equivalent_low=np.nan, equivalent_high=np.nan, reason="")
            if on.any():
                g = np.flatnonzero(on)
                row.update(equivalent_low=_level_at(fam, g[0], "low"), equivalent_high=_level_at(fam, g[-1], "high"))
            row.update(_place(fam, tests, compatible, scale, C, moving[name], metrics, n, bonferroni))
            rows.append(row)
    return pd.DataFrame(rows, columns=PLACEMENT_COLUMNS)


def _place(fam: Family, tests: dict, compatible: np.ndarray, scale: np.ndarray, C: np.ndarray, moving, metrics,
           n: int, bonferroni: float) -> dict:
    """position, level, level_ci_low, level_ci_high, text, off_curve and reason of one condition on one family's
    curve. off_curve (every measured point rejected; also for an overshoot of the curve's end, since stronger
    levels were not measured) is judged also where the family moves no metric: a curve of no effect is still a
    curve a condition can be shown to be off."""
    out = dict(position=NOT_PLACED, level=np.nan, level_ci_low=np.nan, level_ci_high=np.nan, reason="",
               off_curve=False)
    if n < 2:
        out["reason"] = f"fewer than 2 seeds (n = {n}): no seed-level test"
        out["text"] = placement_text(fam.name, NOT_PLACED, np.nan, np.nan, np.nan, out["reason"])
        return out
    if compatible.any():
        g = np.flatnonzero(compatible)
        dist = np.nansum((tests["mean"][g] / scale) ** 2, axis=1)
        best = int(g[np.argmin(dist)])
        position = BELOW if fam.segment[best] < 0 else AT_END if best == len(fam.level) - 1 else WITHIN
        out.update(position=position, level=fam.level[best] if position != BELOW else np.nan,
                   level_ci_low=_level_at(fam, g[0], "low"), level_ci_high=_level_at(fam, g[-1], "high"))
    else:
        last = len(fam.level) - 1
        end = nanmean(C[last], axis=0)  # the curve's end, across seeds (N,)
        rejected = np.nan_to_num(tests["p"][last], nan=1.0) < bonferroni
        on_axis = np.array([m in moving for m in metrics])
        overshoot = np.sign(tests["mean"][last]) == np.sign(end)
        beyond = bool(moving and rejected.any() and np.all(~rejected | (on_axis & overshoot)))
        out.update(position=BEYOND if beyond else OFF_CURVE, off_curve=True,
                   level_ci_low=float(fam.levels[-1]) if beyond else np.nan,
                   level_ci_high=np.inf if beyond else np.nan,
                   reason="" if beyond else "rejected at every point of the curve")
    if not moving:
        out.update(position=NOT_PLACED, level=np.nan, level_ci_low=np.nan, level_ci_high=np.nan,
                   reason=f"{fam.name.replace('_', ' ')} moves none of the metrics at these levels")
    out["text"] = placement_text(fam.name, out["position"], out["level"], out["level_ci_low"],
                                 out["level_ci_high"], out["reason"])
    return out
