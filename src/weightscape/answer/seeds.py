"""Effects against seed noise: ACROSS-SEED statistics (the paper's across-layer tests stay in `weightscape.stats`).

The unit of replication is the seed (one independent fine-tune). For condition c, seed s and metric m:
    E(c, s, m) = mean over layers of [ mean over datasets/models of `relative` ]     (the per-seed effect)
    Delta(c, s, m) = the same mean of `delta`                                         (the per-seed change)
Across seeds: mean, 95 % t-interval, one-sample t-test against 0 (scipy.stats.ttest_1samp), and an equivalence
test (TOST) against +-margin. The noise floor of a metric is the seed-to-seed SD of Delta: the baseline's own and,
pooled over every condition, the within-condition SD (more degrees of freedom, same meaning if noise does not
depend on the condition -- each condition's own SD is listed so a reader can check). Every table carries n_seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from weightscape.names import BASELINE, COMBINED, CURVATURE_OUTCOMES, DATA_FAMILIES, REGULARIZERS

SCOPE = "across seeds"  # the `scope` column of every table of this package
#: the families placed on the dropout / weight-decay axes
PLACED_FAMILIES = DATA_FAMILIES + (COMBINED,)
LEVEL = 0.95


# ----------------------------------------------------------------------------------------------- small tests
def bh(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control) of the finite entries; NaN kept."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def t_summary(values, popmean: float = 0.0) -> dict:
    """n, mean, sd (ddof=1), 95 % t-interval and two-sided one-sample t-test (scipy.stats.ttest_1samp) of the
    finite values. NaN where undefined (n < 2, or zero spread)."""
    x = _finite(values)
    n = len(x)
    out = dict(n=n, mean=float(x.mean()) if n else np.nan, sd=float(x.std(ddof=1)) if n > 1 else np.nan,
               ci_low=np.nan, ci_high=np.nan, t=np.nan, p=np.nan)
    if n > 1 and out["sd"] > 0:
        res = stats.ttest_1samp(x, popmean)
        ci = res.confidence_interval(LEVEL)
        out.update(ci_low=float(ci.low), ci_high=float(ci.high), t=float(res.statistic), p=float(res.pvalue))
    return out


def tost(values, margin: float, alpha: float = 0.05) -> dict:
    """Two one-sided tests (Schuirmann 1987) of the mean against [-margin, +margin].

    p_lower = ttest_1samp(x, -margin, alternative="greater"), p_upper = ttest_1samp(x, +margin, alternative="less"),
    p_tost = max of the two; equivalent when p_tost < alpha, which is the same as the (1 - 2 alpha) t-interval
    (ci90_low, ci90_high) lying inside the margin. NaN (and not equivalent) for n < 2, zero spread or no margin.
    """
    x = _finite(values)
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


# ----------------------------------------------------------------------------------------------- the cube
@dataclass
class Cube:
    """Per-layer values after averaging over datasets/models: arrays (condition, seed, layer, metric)."""

    conditions: list
    family: dict  # condition -> family
    seeds: list
    layers: list
    metrics: list
    relative: np.ndarray
    delta: np.ndarray

    def index(self, condition) -> int:
        return self.conditions.index(condition)

    def of_family(self, family: str) -> list:
        return [c for c in self.conditions if self.family[c] == family]

    def seed_means(self, value: str = "relative") -> np.ndarray:
        """(condition, seed, metric): mean over the layers with a finite value (NaN where none)."""
        return nanmean(getattr(self, value), axis=2)


def nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmean without the all-NaN warning."""
    ok = np.isfinite(a)
    count = ok.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, a, 0.0).sum(axis=axis) / np.where(count > 0, count, np.nan)


def build_cube(deltas: pd.DataFrame, metrics) -> Cube:
    """The (condition, seed, layer, metric) arrays of `relative` and `delta` from a `stats.layer_deltas` table,
    restricted to `metrics` (those present, in the given order). Layers are the `longname`s after averaging over
    datasets/models, as in `stats.family_effects`."""
    need = {"condition", "family", "seed", "longname", "metric", "relative", "delta"}
    missing = sorted(need - set(deltas.columns))
    if missing:
        raise ValueError(f"deltas table lacks column(s) {', '.join(missing)} (expected stats.layer_deltas output)")
    present = set(deltas["metric"].unique())
    metrics = [m for m in metrics if m in present]
    if not metrics:
        raise ValueError(f"deltas table has none of the chosen metrics; it has {sorted(present)}")
    d = deltas[deltas["metric"].isin(metrics)]
    if BASELINE not in set(d["family"]):
        raise ValueError("deltas table has no baseline (family=baseline) rows")
    per = d.groupby(["condition", "seed", "longname", "metric"], sort=False)[["relative", "delta"]].mean()
    family = d.drop_duplicates("condition").set_index("condition")["family"].to_dict()
    conditions = list(family)
    seeds = sorted(d["seed"].unique())
    layers = list(dict.fromkeys(d["longname"]))
    full = pd.MultiIndex.from_product([conditions, seeds, layers, metrics])
    shape = (len(conditions), len(seeds), len(layers), len(metrics))
    arrays = {v: per[v].reindex(full).to_numpy(dtype=float).reshape(shape) for v in ("relative", "delta")}
    return Cube(conditions, family, seeds, layers, metrics, **arrays)


# ----------------------------------------------------------------------------------------------- noise floor
def noise_floor(cube: Cube, source: str = "pooled") -> pd.DataFrame:
    """Seed-to-seed SD of Delta per metric. Columns: scope, metric, n_seeds (of the baseline),
    noise_sd_baseline (SD across seeds of the baseline's Delta, ddof=1), noise_sd_pooled (within-condition SD
    pooled over every condition with >= 2 seeds), df_pooled, noise_sd (the one used: `source` = "pooled" or
    "baseline"), noise_source."""
    if source not in ("pooled", "baseline"):
        raise ValueError(f"noise_floor must be 'pooled' or 'baseline', not {source!r}")
    delta = cube.seed_means("delta")  # (C, S, N)
    base = delta[cube.index(BASELINE)] if BASELINE in cube.conditions else np.full(delta.shape[1:], np.nan)
    rows = []
    for j, metric in enumerate(cube.metrics):
        b = _finite(base[:, j])
        ss, df = 0.0, 0
        for i in range(len(cube.conditions)):
            x = _finite(delta[i, :, j])
            if len(x) > 1:
                ss += float(((x - x.mean()) ** 2).sum())
                df += len(x) - 1
        sd_b = float(b.std(ddof=1)) if len(b) > 1 else np.nan
        sd_p = float(np.sqrt(ss / df)) if df else np.nan
        rows.append(dict(scope=SCOPE, metric=metric, n_seeds=len(b), noise_sd_baseline=sd_b, noise_sd_pooled=sd_p,
                         df_pooled=df, noise_sd=sd_p if source == "pooled" else sd_b, noise_source=source))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- margins
def _margin_terms(rule) -> dict:
    """A margin rule -> {"absolute": x} or {"noise": k, "regularizers": f} (either or both)."""
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        return {"absolute": float(rule)}
    if not isinstance(rule, dict):
        raise ValueError(f"margin rule {rule!r}: give a number or a mapping like {{noise: 1.0, regularizers: 0.25}}")
    if "relative_to" in rule:  # the {relative_to: noise, factor: 1.0} spelling
        rule = {rule["relative_to"]: rule.get("factor", 1.0)}
    unknown = sorted(set(rule) - {"noise", "regularizers"})
    if unknown or not rule:
        raise ValueError(f"margin rule {rule!r}: keys are 'noise' and/or 'regularizers' (factors), not {unknown}")
    return {k: float(v) for k, v in rule.items()}


def margins(spec, cube: Cube, noise: pd.DataFrame) -> pd.DataFrame:
    """Equivalence margin per metric, in the metric's units. Columns: metric, margin, margin_rule.

    `spec`: a number (one absolute margin for every metric) or {"default": rule, <metric>: rule, ...}; a rule is
    a number (absolute) or a mapping of factors {noise: k, regularizers: f}: margin = the largest of
    k x noise_sd(metric) and f x the strongest regularizer effect on the metric (largest |across-seed mean| over
    the dropout and weight-decay levels). Terms that cannot be computed (no seeds, no regularizer) are skipped;
    NaN when none can.
    """
    if not isinstance(spec, dict) or ("default" not in spec and not set(spec) & set(cube.metrics)):
        spec = {"default": spec}
    unknown = sorted(set(spec) - {"default"} - set(cube.metrics) - set(CURVATURE_OUTCOMES))  # run-level: runlevel.py
    if unknown:
        raise ValueError(f"margin: unknown metric(s) {', '.join(map(str, unknown))}; chosen: {', '.join(cube.metrics)}")
    mean = nanmean(cube.seed_means(), axis=1)  # (C, N)
    regs = [cube.index(c) for c in cube.conditions if cube.family[c] in REGULARIZERS]
    sd = noise.set_index("metric")["noise_sd"]
    rows = []
    for j, metric in enumerate(cube.metrics):
        rule = spec.get(metric, spec.get("default"))
        terms = _margin_terms(rule)
        strongest = np.nanmax(np.abs(mean[regs, j])) if regs and np.isfinite(mean[regs, j]).any() else np.nan
        values = [terms.get("absolute", np.nan), terms.get("noise", np.nan) * sd.get(metric, np.nan),
                  terms.get("regularizers", np.nan) * strongest]
        values = [v for v in values if np.isfinite(v)]
        rows.append(dict(metric=metric, margin=max(values) if values else np.nan,
                         margin_rule=", ".join(f"{k} {v:g}" for k, v in terms.items())))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- effects
def effects(cube: Cube, noise: pd.DataFrame, margin: pd.DataFrame, alpha: float = 0.05,
            fdr: bool = True) -> pd.DataFrame:
    """One row per (non-baseline condition, metric): the across-seed effect, its noise scale and TOST.

    Columns: scope, condition, family, metric, n_seeds, mean, sd, ci_low, ci_high (95 % t), t, p, p_adj,
    noise_sd, effect_in_noise (mean / noise_sd: "x times the noise"), delta_sd (this condition's own SD across
    seeds of Delta), margin, ci90_low, ci90_high, p_tost, p_tost_adj, differs (p < alpha), equivalent
    (p_tost < alpha), measurable (differs and not equivalent: an effect shown to be there and not shown to be
    negligible). p_adj and p_tost_adj: Benjamini-Hochberg over all rows of this table (the question "does
    condition c move metric m" for every c and m); `differs` / `equivalent` use them when `fdr`.
    """
    per, delta = cube.seed_means("relative"), cube.seed_means("delta")
    sd = noise.set_index("metric")["noise_sd"]
    mg = margin.set_index("metric")["margin"]
    rows = []
    for c in cube.conditions:
        if cube.family[c] == BASELINE:
            continue
        i = cube.index(c)
        for j, metric in enumerate(cube.metrics):
            s = t_summary(per[i, :, j])
            e = tost(per[i, :, j], mg.get(metric, np.nan), alpha)
            own = _finite(delta[i, :, j])
            rows.append(dict(scope=SCOPE, condition=c, family=cube.family[c], metric=metric, n_seeds=s["n"],
                             mean=s["mean"], sd=s["sd"], ci_low=s["ci_low"], ci_high=s["ci_high"], t=s["t"],
                             p=s["p"], noise_sd=sd.get(metric, np.nan),
                             delta_sd=float(own.std(ddof=1)) if len(own) > 1 else np.nan,
                             margin=mg.get(metric, np.nan), ci90_low=e["ci90_low"], ci90_high=e["ci90_high"],
                             p_tost=e["p_tost"]))
    cols = ["scope", "condition", "family", "metric", "n_seeds", "mean", "sd", "ci_low", "ci_high", "t", "p",
            "p_adj", "noise_sd", "effect_in_noise", "delta_sd", "margin", "ci90_low", "ci90_high", "p_tost",
            "p_tost_adj", "differs", "equivalent", "measurable"]
    out = pd.DataFrame(rows, columns=[c for c in cols if c not in ("p_adj", "effect_in_noise", "p_tost_adj",
                                                                    "differs", "equivalent", "measurable")])
    with np.errstate(invalid="ignore", divide="ignore"):
        out["effect_in_noise"] = out["mean"] / out["noise_sd"].where(out["noise_sd"] > 0)
    out["p_adj"], out["p_tost_adj"] = bh(out["p"]), bh(out["p_tost"])
    p, q = (out["p_adj"], out["p_tost_adj"]) if fdr else (out["p"], out["p_tost"])
    out["differs"], out["equivalent"] = (p < alpha).to_numpy(), (q < alpha).to_numpy()
    out["measurable"] = out["differs"] & ~out["equivalent"]
    return out[cols]


def family_effects(cube: Cube, noise: pd.DataFrame) -> pd.DataFrame:
    """One row per (family, metric): per seed, the mean effect over the family's conditions; then across seeds.

    Columns: scope, family, metric, n_conditions, n_seeds, mean, sd, ci_low, ci_high, t, p, p_adj (BH over the
    rows of this table), noise_sd, effect_in_noise.
    """
    per = cube.seed_means("relative")
    sd = noise.set_index("metric")["noise_sd"]
    rows = []
    for family in dict.fromkeys(cube.family.values()):
        if family == BASELINE:
            continue
        idx = [cube.index(c) for c in cube.of_family(family)]
        fam = nanmean(per[idx], axis=0)  # (S, N)
        for j, metric in enumerate(cube.metrics):
            s = t_summary(fam[:, j])
            noise_sd = sd.get(metric, np.nan)
            rows.append(dict(scope=SCOPE, family=family, metric=metric, n_conditions=len(idx), n_seeds=s["n"],
                             mean=s["mean"], sd=s["sd"], ci_low=s["ci_low"], ci_high=s["ci_high"], t=s["t"],
                             p=s["p"], noise_sd=noise_sd,
                             effect_in_noise=s["mean"] / noise_sd if noise_sd > 0 else np.nan))
    out = pd.DataFrame(rows)
    if len(out):
        out.insert(out.columns.get_loc("p") + 1, "p_adj", bh(out["p"]))
    return out

