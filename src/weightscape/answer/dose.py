"""Dose-response of the regularizers and the equivalent strength of each data condition.

Curves. For each regularizer family (dropout on its p, weight decay on log10 lambda) and metric, the across-seed
effect at each measured level is made monotone by isotonic regression (pool-adjacent-violators, direction = the one
with the smaller squared error) and linearly interpolated between measured levels. Below the smallest level the
curve runs straight from 0 (the baseline: no regularization, no effect, by definition of the relative effect) to
the smallest level's effect; beyond the largest level there is no curve (never extrapolated).

Placement. Metrics are put on one scale by dividing each by its seed-noise SD (`noise_sd`; where that is not
available -- one seed -- by the SD of the conditions' effects on the metric). The distance of a condition to a
family's curve is min over the curve of the RMS over metrics of the scaled difference; the equivalent level is
where the minimum lies ("below the smallest level" on the segment from 0, "at or beyond the largest level" at the
curve's end). Uncertainty: a seeded two-way bootstrap (numpy; `n_boot` resamples drawing seeds and layers with
replacement, the same draw for every condition, so the comparison is paired), re-fitting the curves in every
resample; percentile 95 % intervals. The noise scale is held fixed across resamples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from weightscape.names import DROPOUT, REGULARIZERS, WEIGHT_DECAY

from .seeds import SCOPE, Cube, nanmean

LOG_AXIS = frozenset({WEIGHT_DECAY})  # families whose level axis is log10
BELOW, WITHIN, BEYOND = "below the smallest level", "within the measured levels", "at or beyond the largest level"
SYMBOL = {DROPOUT: "p", WEIGHT_DECAY: "lambda"}


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


# ----------------------------------------------------------------------------------------------- monotone fit
def pava(y, increasing: bool = True) -> np.ndarray:
    """Isotonic (least-squares monotone) fit of y in the given order, equal weights: pool adjacent violators.
    Same result as sklearn.isotonic.IsotonicRegression on distinct x (tested against it)."""
    y = np.asarray(y, dtype=float)
    if not increasing:
        return -pava(-y, True)
    sums, counts = [], []
    for v in y:
        sums.append(v)
        counts.append(1)
        while len(sums) > 1 and sums[-2] / counts[-2] > sums[-1] / counts[-1]:
            s, c = sums.pop(), counts.pop()
            sums[-1] += s
            counts[-1] += c
    return np.repeat(np.array(sums) / np.array(counts), counts)


def monotone(y) -> tuple[np.ndarray, bool]:
    """(fitted, increasing): the isotonic fit in the direction with the smaller squared error (ties: increasing)."""
    y = np.asarray(y, dtype=float)
    up, down = pava(y, True), pava(y, False)
    increasing = ((y - up) ** 2).sum() <= ((y - down) ** 2).sum()
    return (up if increasing else down), bool(increasing)


# ----------------------------------------------------------------------------------------------- families
@dataclass
class Family:
    """One regularizer family's measured levels, sorted, and its fit direction per metric."""

    name: str
    conditions: list
    idx: np.ndarray  # cube indices
    levels: np.ndarray
    x: np.ndarray  # axis values (log10 for weight decay)
    increasing: np.ndarray  # (N,) bool, from the full-data fit

    def level_at(self, u: float, bound: str = "") -> float:
        """Curve position u (-1..0: segment from 0 to the smallest level; 0..1: measured range) -> level.

        Outside the measured range a point has no level: NaN, or for a CI `bound` "low" / "high" the edge of
        the open range (below: 0.0 .. smallest level; at or beyond: largest level .. inf)."""
        if not np.isfinite(u):
            return np.nan
        if u < 0:
            return {"low": 0.0, "high": float(self.levels[0])}.get(bound, np.nan)
        if u >= 1 and len(self.x) > 1:
            return {"low": float(self.levels[-1]), "high": np.inf}.get(bound, float(self.levels[-1]))
        x = self.x[0] + u * (self.x[-1] - self.x[0])
        return float(10 ** x) if self.name in LOG_AXIS else float(x)


def regularizer_families(cube: Cube, levels: pd.Series) -> dict[str, Family]:
    """The dropout / weight-decay families present in `cube` with a usable level (> 0) per condition."""
    est = nanmean(cube.seed_means(), axis=1)  # (C, N) across-seed means
    out = {}
    for name in REGULARIZERS:
        conds = [c for c in cube.of_family(name) if np.isfinite(levels.get(c, np.nan)) and levels.get(c) > 0]
        if not conds:
            continue
        conds.sort(key=lambda c: levels[c])
        lv = np.array([levels[c] for c in conds], dtype=float)
        idx = np.array([cube.index(c) for c in conds])
        inc = np.ones(len(cube.metrics), dtype=bool)
        for j in range(len(cube.metrics)):
            y = est[idx, j]
            if np.isfinite(y).sum() > 1:
                inc[j] = monotone(y[np.isfinite(y)])[1]
        out[name] = Family(name, conds, idx, lv, np.log10(lv) if name in LOG_AXIS else lv, inc)
    return out


def match_scale(cube: Cube, noise: pd.DataFrame) -> pd.DataFrame:
    """Per metric, the divisor that puts metrics on one scale: noise_sd, else (no seed noise available) the SD
    of the across-seed mean effects of all non-baseline conditions. Columns: metric, match_scale, match_source."""
    sd = noise.set_index("metric")["noise_sd"]
    est = nanmean(cube.seed_means(), axis=1)
    rows = []
    for j, metric in enumerate(cube.metrics):
        s, src = sd.get(metric, np.nan), "noise_sd"
        if not (np.isfinite(s) and s > 0):
            vals = est[:, j][np.isfinite(est[:, j]) & (est[:, j] != 0)]
            s, src = (float(vals.std(ddof=1)), "sd of effects") if len(vals) > 1 else (np.nan, "none")
        rows.append(dict(metric=metric, match_scale=s, match_source=src))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- curves table
def dose_curves(effects: pd.DataFrame, families: dict[str, Family], metrics) -> pd.DataFrame:
    """The figure's table: one row per (regularizer family, metric, measured level).

    Columns: scope, family, metric, condition, level, x (the axis value), axis ("log10" | "linear"), n_seeds,
    effect (across-seed mean), ci_low, ci_high (95 % t), effect_in_noise, fitted (the monotone fit the placement
    interpolates), increasing.
    """
    eff = effects.set_index(["condition", "metric"])
    rows = []
    for fam in families.values():
        for j, metric in enumerate(metrics):
            keys = [(c, metric) for c in fam.conditions]
            part = eff.reindex(keys)
            y = part["mean"].to_numpy(dtype=float)
            fitted = np.full(len(y), np.nan)
            ok = np.isfinite(y)
            if ok.any():
                fitted[ok] = pava(y[ok], bool(fam.increasing[j]))
            for k, c in enumerate(fam.conditions):
                r = part.iloc[k]
                rows.append(dict(scope=SCOPE, family=fam.name, metric=metric, condition=c, level=fam.levels[k],
                                 x=fam.x[k], axis="log10" if fam.name in LOG_AXIS else "linear",
                                 n_seeds=r["n_seeds"], effect=r["mean"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                                 effect_in_noise=r["effect_in_noise"], fitted=fitted[k],
                                 increasing=bool(fam.increasing[j])))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- placement engine
def _estimate(R: np.ndarray, ok: np.ndarray, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(C, N) effects with layer weights w and seed weights v: per seed the weighted layer mean, then the
    weighted mean over seeds (finite values only)."""
    num = np.einsum("csln,l->csn", np.where(ok, R, 0.0), w)
    den = np.einsum("csln,l->csn", ok, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = num / den
        good = np.isfinite(per)
        return np.einsum("csn,s->cn", np.where(good, per, 0.0), v) / np.einsum("csn,s->cn", good, v)


def _curve(fam: Family, e: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(G, N) curve values at positions u for effects e (C, N)."""
    out = np.full((len(u), e.shape[1]), np.nan)
    x = fam.x[0] + np.clip(u, 0, 1) * (fam.x[-1] - fam.x[0])
    below = u < 0
    for j in range(e.shape[1]):
        y = e[fam.idx, j]
        ok = np.isfinite(y)
        if not ok.any():
            continue
        fitted = pava(y[ok], bool(fam.increasing[j]))
        out[:, j] = np.interp(x, fam.x[ok], fitted)
        out[below, j] = (u[below] + 1) * fitted[0]
    return out


def _nearest(e_t: np.ndarray, curve: np.ndarray, scale: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per target: (distance, position) of the nearest curve point; RMS over metrics of scaled differences."""
    diff = (e_t[:, None, :] - curve[None, :, :]) / scale
    d = np.sqrt(np.mean(diff ** 2, axis=2))  # NaN if any metric is NaN
    pos = np.full(len(e_t), np.nan)
    dist = np.full(len(e_t), np.nan)
    for i in range(len(e_t)):
        if np.isfinite(d[i]).any():
            k = int(np.nanargmin(d[i]))
            pos[i], dist[i] = u[k], d[i, k]
    return dist, pos


PLACEMENT_COLUMNS = ["scope", "condition", "family", "regularizer", "metrics", "n_seeds", "n_layers", "level",
                     "position", "level_ci_low", "level_ci_high", "distance", "distance_ci_low", "distance_ci_high",
                     "explained", "n_boot"]
COMPARISON_COLUMNS = ["scope", "condition", "family", "n_seeds", "distance_dropout", "distance_weight_decay",
                      "difference", "diff_ci_low", "diff_ci_high", "closer_to", "n_boot"]


def placements(cube: Cube, families: dict[str, Family], scale: pd.DataFrame, targets, n_boot: int = 1000,
               seed: int = 0, grid: int = 201) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Equivalent strength of each target condition on each present regularizer axis, and the paired comparison.

    placement columns: scope, condition, family, regularizer, metrics, n_seeds, n_layers, level (NaN below the
    smallest level), position (BELOW | WITHIN | BEYOND), level_ci_low, level_ci_high (0.0 = as weak as no
    regularization, inf = beyond the largest level), distance, distance_ci_low, distance_ci_high, explained
    (1 - distance^2 / distance-to-zero^2: the share of the condition's scaled effect the curve accounts for), n_boot.
    comparison columns (only when both families are present): scope, condition, family, n_seeds, distance_dropout,
    distance_weight_decay, difference (weight_decay - dropout: > 0 means nearer dropout), diff_ci_low,
    diff_ci_high, closer_to (dropout | weight_decay | "not separated"), n_boot.
    """
    targets = [t for t in targets if t in cube.conditions]
    s = scale.set_index("metric")["match_scale"].reindex(cube.metrics).to_numpy(dtype=float)
    use = np.isfinite(s) & (s > 0)
    metrics = [m for m, k in zip(cube.metrics, use) if k]
    if not metrics or not targets:  # nothing to place, or no metric with a usable scale
        families = {}
    fams = {n: Family(f.name, f.conditions, f.idx, f.levels, f.x, f.increasing[use]) for n, f in families.items()}
    R, s = cube.relative[..., use], s[use]
    ok = np.isfinite(R)
    t_idx = np.array([cube.index(t) for t in targets], dtype=int)
    u = np.concatenate([np.linspace(-1, 0, 50, endpoint=False), np.linspace(0, 1, grid)])
    S, L = len(cube.seeds), len(cube.layers)

    def run(w, v):
        e = _estimate(R, ok, w, v)
        return e, {n: _nearest(e[t_idx], _curve(f, e, u), s, u) for n, f in fams.items()}

    e0, point = run(np.ones(L), np.ones(S))
    rng = np.random.default_rng(seed)
    dist_b = {n: np.full((n_boot, len(targets)), np.nan) for n in fams}
    pos_b = {n: np.full((n_boot, len(targets)), np.nan) for n in fams}
    for b in range(n_boot if fams else 0):
        w = np.bincount(rng.integers(0, L, L), minlength=L).astype(float)
        v = np.bincount(rng.integers(0, S, S), minlength=S).astype(float)
        for n, (d, p) in run(w, v)[1].items():
            dist_b[n][b], pos_b[n][b] = d, p
    n_seeds = np.isfinite(cube.seed_means()[..., use]).all(axis=2).sum(axis=1)[t_idx]
    n_layers = np.isfinite(R).any(axis=(1, 3)).sum(axis=1)[t_idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        origin = np.sqrt(np.mean((e0[t_idx] / s) ** 2, axis=1)) if fams else np.full(len(targets), np.nan)
    rows = []
    for n, fam in fams.items():
        dist, pos = point[n]
        for i, c in enumerate(targets):
            lo_u, hi_u = _pct(pos_b[n][:, i])
            lo_d, hi_d = _pct(dist_b[n][:, i])
            position = (np.nan if not np.isfinite(pos[i]) else BELOW if pos[i] < 0 else
                        BEYOND if pos[i] >= 1 and len(fam.x) > 1 else WITHIN)
            rows.append(dict(scope=SCOPE, condition=c, family=cube.family[c], regularizer=n,
                             metrics=",".join(metrics), n_seeds=int(n_seeds[i]), n_layers=int(n_layers[i]),
                             level=fam.level_at(pos[i]), position=position, level_ci_low=fam.level_at(lo_u, "low"),
                             level_ci_high=fam.level_at(hi_u, "high"), distance=dist[i], distance_ci_low=lo_d,
                             distance_ci_high=hi_d,
                             explained=1 - dist[i] ** 2 / origin[i] ** 2 if origin[i] > 0 else np.nan,
                             n_boot=n_boot))
    comp = []
    if DROPOUT in fams and WEIGHT_DECAY in fams:
        for i, c in enumerate(targets):
            lo, hi = _pct(dist_b[WEIGHT_DECAY][:, i] - dist_b[DROPOUT][:, i])
            dd, dw = point[DROPOUT][0][i], point[WEIGHT_DECAY][0][i]
            comp.append(dict(scope=SCOPE, condition=c, family=cube.family[c], n_seeds=int(n_seeds[i]),
                             distance_dropout=dd, distance_weight_decay=dw, difference=dw - dd, diff_ci_low=lo,
                             diff_ci_high=hi, n_boot=n_boot,
                             closer_to=DROPOUT if lo > 0 else WEIGHT_DECAY if hi < 0 else "not separated"))
    return pd.DataFrame(rows, columns=PLACEMENT_COLUMNS), pd.DataFrame(comp, columns=COMPARISON_COLUMNS)


def _pct(x: np.ndarray) -> tuple[float, float]:
    """Percentile 95 % interval of the finite bootstrap values (NaN when fewer than 2)."""
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return np.nan, np.nan
    lo, hi = np.percentile(x, [2.5, 97.5])
    return float(lo), float(hi)
