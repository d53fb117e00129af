"""Effects against seed noise: ACROSS-SEED statistics (the paper's across-layer tests stay in `weightscape.stats`).

The unit of replication is the seed (one independent fine-tune). For condition c, seed s and metric m:
    E(c, s, m) = mean over layers of [ mean over datasets/models of `relative` ]     (the paired effect)
    Delta(c, s, m) = the same mean of `delta`                                         (the change from pretrained)
`relative` is the run's change minus the same seed's baseline change, so head initialisation and data order cancel:
E is a paired difference, and its noise is the SD of E across seeds (`sd`), not the SD of each run's own change.

Across seeds, per (condition, metric): mean, the standardised paired effect d_z = mean / sd ("x the noise" means
d_z everywhere), a t-test against 0 and an equivalence test (TOST) against the metric's margin, with intervals.
The t-statistics are moderated (Smyth 2004, the empirical-Bayes t of limma, made for experiments with 3
replicates): each row's paired variance (n - 1 degrees of freedom) is shrunk towards a prior fitted to the paired
variances of its family's conditions on that metric (`priors`), which adds the prior's degrees of freedom d0. Where
the conditions' variances differ more than sampling explains, d0 comes out small and the test is close to the plain
t-test with n - 1 df; where they agree, close to a pooled t-test. d0 is capped at the pooled degrees of freedom (the
prior carries no more information than it was fitted on), and a row never gets less than its own variance.
The margin is fixed before the data (`margins`): an absolute value in the metric's units, or a relative change of
the baseline run's own value, never a quantity of the regularizers being compared. Every table carries n_seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from weightscape.names import BASELINE, COMBINED, CURVATURE_OUTCOMES, DATA_FAMILIES

from .inference import Prior, bh, finite, moderated_tests, selection_level, t_summary, variance_prior

SCOPE = "across seeds"  # the `scope` column of every table of this package
#: the families placed on the dropout / weight-decay axes
PLACED_FAMILIES = DATA_FAMILIES + (COMBINED,)
#: the per-metric states of an effect (the `state` column of effects.csv), strongest first
BEYOND_MARGIN = "moves beyond the margin"  # 95 % CI entirely outside +-margin
DETECTED = "detected"  # CI excludes 0; its size against the margin is not shown either way
DETECTED_SMALL = "detected, within the margin"  # CI excludes 0 and the 90 % CI lies inside +-margin
WITHIN_MARGIN = "within the margin"  # not detected, and the 90 % CI lies inside +-margin (equivalence shown)
UNDECIDED = "undecided"  # neither an effect nor its absence is shown
#: the keys of a margin rule (a mapping); a bare number is an absolute margin in the metric's units
MARGIN_RULES = ("absolute", "relative")
#: metrics on a log10 scale: a relative margin f is log10(1 + f) there, whatever the value
LOG_SCALE = frozenset({"log_norm", "log_spectral_norm", "log_alpha_norm", *CURVATURE_OUTCOMES})


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
    value: np.ndarray  # the run's own metric value (`finetuned` of stats.layer_deltas)

    def index(self, condition) -> int:
        return self.conditions.index(condition)

    def of_family(self, family: str) -> list:
        return [c for c in self.conditions if self.family[c] == family]

    def seed_means(self, value: str = "relative") -> np.ndarray:
        """(condition, seed, metric): mean over the layers with a finite value (NaN where none)."""
        return nanmean(getattr(self, value), axis=2)

    def subset(self, layers) -> "Cube":
        """The same cube on some of its layers (a layer group)."""
        keep = [k for k, name in enumerate(self.layers) if name in set(layers)]
        pick = (lambda a: a[:, :, keep, :])
        return Cube(self.conditions, self.family, self.seeds, [self.layers[k] for k in keep], self.metrics,
                    pick(self.relative), pick(self.delta), pick(self.value))


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
    d = d.assign(value=d["finetuned"]) if "finetuned" in d.columns else d.assign(value=np.nan)
    per = d.groupby(["condition", "seed", "longname", "metric"], sort=False)[["relative", "delta", "value"]].mean()
    family = d.drop_duplicates("condition").set_index("condition")["family"].to_dict()
    conditions = list(family)
    seeds = sorted(d["seed"].unique())
    layers = list(dict.fromkeys(d["longname"]))
    full = pd.MultiIndex.from_product([conditions, seeds, layers, metrics])
    shape = (len(conditions), len(seeds), len(layers), len(metrics))
    arrays = {v: per[v].reindex(full).to_numpy(dtype=float).reshape(shape) for v in ("relative", "delta", "value")}
    return Cube(conditions, family, seeds, layers, metrics, **arrays)


# ----------------------------------------------------------------------------------------------- noise
def paired_variances(cube: Cube) -> tuple[np.ndarray, np.ndarray]:
    """(C, N) sample variances across seeds of every non-baseline condition's paired effect, and their df."""
    E = cube.seed_means("relative")
    n = np.isfinite(E).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(E, axis=1) / np.where(n > 0, n, np.nan)
        var = np.nansum((E - mean[:, None]) ** 2, axis=1) / np.where(n > 1, n - 1, np.nan)
    others = np.array([cube.family[c] != BASELINE for c in cube.conditions])
    return np.where(others[:, None] & (n > 1), var, np.nan), np.maximum(n - 1, 0)


ALL = "all conditions"


def priors(cube: Cube) -> dict[str, dict[str, Prior]]:
    """metric -> {family: the moderated t's prior of that family's conditions, ALL: of every non-baseline
    condition}. Each family has its own prior, since noise differs between families (weight decay's strong levels
    move the norms of W with several times the seed noise of the other conditions); a family with fewer than
    three conditions takes ALL's."""
    var, df = paired_variances(cube)
    out = {}
    for j, m in enumerate(cube.metrics):
        everyone = variance_prior(var[:, j], df[:, j])
        out[m] = {ALL: everyone}
        for family in dict.fromkeys(cube.family.values()):
            rows = [i for i, c in enumerate(cube.conditions) if cube.family[c] == family]
            fitted = variance_prior(var[rows, j], df[rows, j])
            out[m][family] = fitted if np.isfinite(fitted.var) else everyone
    return out


def prior_of(prior: dict[str, Prior], *families: str) -> Prior:
    """The prior of one family's row, or of the seed-paired difference of two families' rows (Prior.pair)."""
    found = [prior.get(f, prior[ALL]) for f in families]
    return found[0] if len(found) == 1 else Prior.pair(*found)


def noise_table(cube: Cube) -> pd.DataFrame:
    """Per metric, the seed noise of the paired effect and the reference a relative margin is set from.

    Columns: scope, metric, n_seeds (of the baseline), noise_sd (the paired noise: SD across seeds of E, pooled
    within every non-baseline condition with >= 2 seeds), df (its degrees of freedom), prior_sd and prior_df (the
    moderated t's prior: typical paired SD and the degrees of freedom it adds), noise_sd_unpaired (the pooled SD
    of each run's own change Delta, which still holds head initialisation and data order), paired_over_unpaired,
    baseline_value (mean over seeds and layers of |the baseline run's own value|), baseline_change (mean |Delta|
    of the baseline: how far fine-tuning moves the metric from pretrained, layer by layer).
    """
    E, delta = cube.seed_means("relative"), cube.seed_means("delta")  # (C, S, N)
    others = [i for i, c in enumerate(cube.conditions) if cube.family[c] != BASELINE]
    base = cube.index(BASELINE)
    fitted = priors(cube)
    rows = []
    for j, metric in enumerate(cube.metrics):
        sd_paired, df = _pooled_sd(E[others, :, j])
        sd_unpaired, _ = _pooled_sd(delta[others, :, j])
        change, value = finite(np.abs(cube.delta[base, :, :, j])), finite(np.abs(cube.value[base, :, :, j]))
        prior = fitted[metric][ALL]
        rows.append(dict(scope=SCOPE, metric=metric, n_seeds=len(finite(delta[base, :, j])), noise_sd=sd_paired,
                         df=df, prior_sd=float(np.sqrt(prior.var)), prior_df=prior.df, noise_sd_unpaired=sd_unpaired,
                         paired_over_unpaired=sd_paired / sd_unpaired if sd_unpaired > 0 else np.nan,
                         baseline_value=float(value.mean()) if len(value) else np.nan,
                         baseline_change=float(change.mean()) if len(change) else np.nan))
    return pd.DataFrame(rows)


def _pooled_sd(values: np.ndarray) -> tuple[float, int]:
    """Within-row SD pooled over the rows (conditions) of a (C, S) array, and its degrees of freedom."""
    ss, df = 0.0, 0
    for row in values:
        x = finite(row)
        if len(x) > 1:
            ss += float(((x - x.mean()) ** 2).sum())
            df += len(x) - 1
    return (float(np.sqrt(ss / df)) if df else np.nan), df


# ----------------------------------------------------------------------------------------------- margins
def _margin_rule(rule, where: str) -> tuple[str, float]:
    """A margin rule -> (kind, value): a number is absolute; a mapping has exactly one key of MARGIN_RULES."""
    if isinstance(rule, (int, float)) and not isinstance(rule, bool) and rule > 0:
        return "absolute", float(rule)
    if isinstance(rule, dict) and len(rule) == 1 and next(iter(rule)) in MARGIN_RULES:
        kind, value = next(iter(rule.items()))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return kind, float(value)
    raise ValueError(f"{where}: {rule!r} is not a margin rule; allowed: a number > 0 (in the metric's units), "
                     f"{{absolute: x}} or {{relative: f}} (an f-fold change of the baseline run's own value)")


def margins(spec, noise: pd.DataFrame, scale: float = 1.0) -> pd.DataFrame:
    """Equivalence margin per metric, in the metric's units, fixed before the effects are looked at.

    `spec`: a rule for every metric, or {"default": rule, <metric>: rule, ...} (names of other tables' metrics are
    ignored); a rule is a number or {absolute: x}, or {relative: f}: on a log10 metric (LOG_SCALE) log10(1 + f),
    an f-fold change of the quantity whatever its value, else f x the baseline run's own mean |value|
    (`noise_table`'s baseline_value) - references that depend on neither the regularizers nor the grid's range.
    `scale` multiplies every margin (the sensitivity table). Columns: metric, margin, margin_rule."""
    if not isinstance(spec, dict) or set(spec) <= set(MARGIN_RULES):
        spec = {"default": spec}
    ref = noise.set_index("metric")["baseline_value"]
    rows = []
    for metric in noise["metric"]:
        rule = spec.get(metric, spec.get("default"))
        if rule is None:
            raise ValueError(f"stats.equivalence_margin: no rule for metric {metric}; name it or give a default")
        kind, value = _margin_rule(rule, f"stats.equivalence_margin.{metric}")
        if kind == "absolute":
            margin, text = value, f"{value:g}"
        elif metric in LOG_SCALE:
            margin, text = float(np.log10(1 + value)), f"relative {value:g}: log10(1 + {value:g})"
        else:
            margin, text = value * ref.get(metric, np.nan), f"relative {value:g} x baseline value"
        rows.append(dict(metric=metric, margin=scale * margin, margin_rule=text))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- effects
def state(detected: bool, equivalent: bool, beyond: bool) -> str:
    """The state of one effect against 0 and the margin (see the constants above)."""
    if beyond:
        return BEYOND_MARGIN
    if detected:
        return DETECTED_SMALL if equivalent else DETECTED
    return WITHIN_MARGIN if equivalent else UNDECIDED


EFFECT_COLUMNS = ["scope", "condition", "family", "metric", "n_seeds", "mean", "sd", "d_z", "se", "df", "t", "p",
                  "p_adj", "ci_low", "ci_high", "ci_level", "margin", "p_tost", "p_tost_adj", "ci90_low", "ci90_high",
                  "ci90_level", "detected", "equivalent", "beyond_margin", "state"]


def effects(cube: Cube, margin: pd.DataFrame, alpha: float = 0.05, fdr: bool = True,
            prior: dict | None = None) -> pd.DataFrame:
    """One row per (non-baseline condition, metric): the across-seed paired effect, d_z, its tests and its state.

    Columns: scope, condition, family, metric, n_seeds, mean, sd (this row's own paired SD), d_z (mean / sd), se
    and df (of the moderated t: `priors`), t, p, p_adj, ci_low, ci_high (the interval at ci_level), margin,
    p_tost, p_tost_adj, ci90_low, ci90_high (at ci90_level), detected (p_adj < alpha: the CI excludes 0),
    equivalent (p_tost_adj < alpha: the ci90 interval lies inside +-margin), beyond_margin (detected, and the CI
    lies entirely outside +-margin), state (BEYOND_MARGIN | DETECTED | DETECTED_SMALL | WITHIN_MARGIN |
    UNDECIDED). p_adj and p_tost_adj: Benjamini-Hochberg over all rows of this table (the question "does
    condition c move metric m" for every c and m) when `fdr`, else the raw p. The intervals are those of the
    decisions (`selection_level`): ci_level is 0.95 without fdr and 1 - R alpha / m with it, ci90_level 0.90 resp.
    1 - 2 R' alpha / m', so a printed interval excludes 0 exactly when the row is `detected` and lies inside the
    margin exactly when it is `equivalent`.
    """
    E = cube.seed_means("relative")  # (C, S, N)
    prior = priors(cube) if prior is None else prior
    mg = margin.set_index("metric")["margin"]
    idx = [i for i, c in enumerate(cube.conditions) if cube.family[c] != BASELINE]
    blocks = []
    for j, metric in enumerate(cube.metrics):
        x = E[idx, :, j]
        rows_prior = [prior_of(prior[metric], cube.family[cube.conditions[i]]) for i in idx]
        row_prior = Prior(df=np.array([p.df for p in rows_prior]), var=np.array([p.var for p in rows_prior]))
        first = moderated_tests(x, row_prior, mg.get(metric, np.nan))
        blocks.append((metric, x, row_prior, first))
    p_all = np.concatenate([b[3]["p"] for b in blocks])
    q_all = np.concatenate([b[3]["p_tost"] for b in blocks])
    level = selection_level(p_all, alpha, fdr)
    level90 = selection_level(q_all, alpha, fdr, two_sided=False)
    rows = []
    for metric, x, row_prior, _ in blocks:
        r = moderated_tests(x, row_prior, mg.get(metric, np.nan), level=level, tost_level=level90)
        for k, i in enumerate(idx):
            c = cube.conditions[i]
            rows.append(dict(scope=SCOPE, condition=c, family=cube.family[c], metric=metric, n_seeds=int(r["n"][k]),
                             mean=r["mean"][k], sd=r["sd"][k],
                             d_z=r["mean"][k] / r["sd"][k] if r["sd"][k] > 0 else np.nan, se=r["se"][k],
                             df=r["df"][k], t=r["t"][k], p=r["p"][k], ci_low=r["ci_low"][k], ci_high=r["ci_high"][k],
                             margin=mg.get(metric, np.nan), p_tost=r["p_tost"][k], ci90_low=r["ci90_low"][k],
                             ci90_high=r["ci90_high"][k]))
    out = pd.DataFrame(rows, columns=[c for c in EFFECT_COLUMNS if c not in (
        "p_adj", "p_tost_adj", "ci_level", "ci90_level", "detected", "equivalent", "beyond_margin", "state")])
    order = {c: k for k, c in enumerate(cube.conditions)}
    out = out.sort_values("condition", key=lambda v: v.map(order), kind="stable").reset_index(drop=True)
    out["p_adj"], out["p_tost_adj"] = (bh(out["p"]), bh(out["p_tost"])) if fdr else (out["p"], out["p_tost"])
    out["ci_level"], out["ci90_level"] = level, level90
    out["detected"] = (out["p_adj"] < alpha).to_numpy()
    out["equivalent"] = (out["p_tost_adj"] < alpha).to_numpy()
    out["beyond_margin"] = out["detected"] & ((out["ci_low"] > out["margin"]) | (out["ci_high"] < -out["margin"]))
    out["state"] = [state(d, e, b) for d, e, b in zip(out["detected"], out["equivalent"], out["beyond_margin"])]
    return out[EFFECT_COLUMNS]


def family_effects(cube: Cube) -> pd.DataFrame:
    """One row per (family, metric): per seed, the mean effect over the family's conditions; then across seeds.

    Columns: scope, family, metric, n_conditions, n_seeds, mean, sd, d_z, ci_low, ci_high, t, p, p_adj (BH over
    the rows of this table).
    """
    per = cube.seed_means("relative")
    rows = []
    for family in dict.fromkeys(cube.family.values()):
        if family == BASELINE:
            continue
        idx = [cube.index(c) for c in cube.of_family(family)]
        fam = nanmean(per[idx], axis=0)  # (S, N)
        for j, metric in enumerate(cube.metrics):
            s = t_summary(fam[:, j])
            rows.append(dict(scope=SCOPE, family=family, metric=metric, n_conditions=len(idx), n_seeds=s["n"],
                             mean=s["mean"], sd=s["sd"], d_z=s["d_z"], ci_low=s["ci_low"], ci_high=s["ci_high"],
                             t=s["t"], p=s["p"]))
    out = pd.DataFrame(rows)
    if len(out):
        out.insert(out.columns.get_loc("p") + 1, "p_adj", bh(out["p"]))
    return out
