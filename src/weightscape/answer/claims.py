"""The paper's two claims and the additivity of a data source combined with a regularizer.

    diversity_claim(...)  claim 1: more diversity, more dropout-like (correlations across diversity conditions)
    synthetic_claim(...)  claim 2: synthetic data adds diversity and helps OOD (paired by seed against baseline)
    additivity(...)       combined condition vs the sum of its two single conditions, paired by seed
Each statement is "supported", "not supported" or "inconclusive", chosen by the rule in the function's docstring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from weightscape.names import BASELINE, DROPOUT, LOWER_IS_BETTER, VENDI_SCORES, nice

from .dose import WITHIN
from .seeds import SCOPE, Cube, bh, t_summary, tost

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


# ----------------------------------------------------------------------------------------------- correlations
def spearman_ci(x, y, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of Spearman's rho: seeded numpy resampling of (x, y) pairs; resamples in which
    either variable is constant are skipped. NaN for fewer than 4 pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 4:
        return np.nan, np.nan
    idx = np.random.default_rng(seed).integers(0, len(x), (n_boot, len(x)))
    rx, ry = stats.rankdata(x[idx], axis=1), stats.rankdata(y[idx], axis=1)
    rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    rho = (rx * ry).sum(axis=1)[den > 0] / den[den > 0]
    if len(rho) < 2:
        return np.nan, np.nan
    lo, hi = np.percentile(rho, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def correlation(x, y, n_boot: int = 2000, seed: int = 0) -> dict:
    """Pearson r with its Fisher-z CI (scipy pearsonr(...).confidence_interval()) and Spearman rho with a
    bootstrap CI, on the pairs where both are finite. NaN for fewer than 3 pairs (CIs: fewer than 4)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = dict(n=len(x), pearson_r=np.nan, pearson_ci_low=np.nan, pearson_ci_high=np.nan, pearson_p=np.nan,
               spearman_rho=np.nan, spearman_ci_low=np.nan, spearman_ci_high=np.nan, spearman_p=np.nan)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    r = stats.pearsonr(x, y)
    rho = stats.spearmanr(x, y)
    out.update(pearson_r=float(r.statistic), pearson_p=float(r.pvalue), spearman_rho=float(rho.statistic),
               spearman_p=float(rho.pvalue))
    if len(x) >= 4:
        ci = r.confidence_interval()
        out.update(pearson_ci_low=float(ci.low), pearson_ci_high=float(ci.high))
        out["spearman_ci_low"], out["spearman_ci_high"] = spearman_ci(x, y, n_boot, seed)
    return out


def diversity_by_condition(diversity: pd.DataFrame) -> pd.DataFrame:
    """Vendi scores per condition, each divided by the baseline's of the same dataset/model (and seed, where a
    `seed` column pairs them; else the baseline's mean), then averaged. Without baseline rows: the raw mean."""
    scores = [s for s in VENDI_SCORES if s in diversity.columns]
    d = diversity.reset_index(drop=True).assign(_all=0)
    key = [k for k in ("dataset", "model") if k in d.columns] or ["_all"]
    base = d[d["condition"] == BASELINE]
    if base.empty:
        return d.groupby("condition")[scores].mean()
    den = d[key].merge(base.groupby(key, as_index=False)[scores].mean(), on=key, how="left")[scores]
    if "seed" in d.columns:
        paired = d[key + ["seed"]].merge(base.groupby(key + ["seed"], as_index=False)[scores].mean(),
                                         on=key + ["seed"], how="left")[scores]
        den = paired.fillna(den)
    ratio = pd.DataFrame(d[scores].to_numpy(dtype=float) / den.to_numpy(dtype=float), columns=scores)
    return ratio.assign(condition=d["condition"].to_numpy()).groupby("condition")[scores].mean()


def diversity_claim(effects: pd.DataFrame, placement: pd.DataFrame, diversity: pd.DataFrame, families, metrics,
                    score: str = "vendi_weighted", alpha: float = 0.05, min_seeds: int = 3,
                    min_conditions: int = 4, n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Claim 1 (more diversity, more dropout-like), across the conditions of `families` (diversity by default).

    Targets: effect_size = RMS over `metrics` of the noise-scaled across-seed mean effect (effect_in_noise);
    equivalent_dropout_p = the placement's dropout level, only where it lies within the measured levels.
    Table: one row per (score, target): scope, score, target, n_conditions, n_seeds, pearson_r, pearson_ci_low,
    pearson_ci_high, pearson_p, pearson_p_adj, spearman_rho, spearman_ci_low, spearman_ci_high, spearman_p,
    spearman_p_adj (BH over all rows' Pearson and Spearman p together).
    Rule, on the `score` (vendi_weighted) rows, Spearman: fewer seeds than min_seeds or fewer than min_conditions
    conditions -> inconclusive; both targets with rho > 0, CI above 0 and adjusted p < alpha -> supported; either
    target with its CI below 0 -> not supported; else inconclusive.
    """
    e = effects[effects["family"].isin(families) & effects["metric"].isin(metrics)]
    size = e.groupby("condition")["effect_in_noise"].apply(lambda v: float(np.sqrt(np.mean(v ** 2))))
    n_seeds = e.groupby("condition")["n_seeds"].min()
    p = pd.Series(dtype=float)
    if len(placement):
        dp = placement[placement["regularizer"] == DROPOUT].set_index("condition")
        p = dp["level"].where(dp["position"] == WITHIN)
    div = diversity_by_condition(diversity).reindex(size.index)
    rows = []
    for sc in [s for s in VENDI_SCORES if s in div.columns]:
        for target, y in (("effect_size", size), ("equivalent_dropout_p", p.reindex(size.index))):
            c = correlation(div[sc].to_numpy(), y.to_numpy(dtype=float), n_boot, seed)
            used = size.index[np.isfinite(div[sc].to_numpy()) & np.isfinite(y.to_numpy(dtype=float))]
            rows.append(dict(scope=SCOPE, score=sc, target=target, n_conditions=c.pop("n"),
                             n_seeds=int(n_seeds.reindex(used).min()) if len(used) else 0, **c))
    table = pd.DataFrame(rows)
    if len(table):
        adj = bh(np.concatenate([table["pearson_p"], table["spearman_p"]]))
        table.insert(table.columns.get_loc("pearson_p") + 1, "pearson_p_adj", adj[:len(table)])
        table["spearman_p_adj"] = adj[len(table):]
    prim = table[table["score"] == score] if len(table) else table
    n = int(n_seeds.min()) if len(n_seeds) else 0
    k = int(prim["n_conditions"].min()) if len(prim) else 0
    if len(prim) < 2:
        verdict = (INCONCLUSIVE, f"no {score} for the {', '.join(families)} conditions")
    elif n < min_seeds:
        verdict = (INCONCLUSIVE, f"fewer than {min_seeds} seeds (n = {n})")
    elif k < min_conditions:
        verdict = (INCONCLUSIVE, f"only {k} conditions with both values (need {min_conditions})")
    elif ((prim["spearman_ci_low"] > 0) & (prim["spearman_p_adj"] < alpha)).all():
        verdict = (SUPPORTED, f"{nice(score)} rises with both the effect size and the equivalent dropout p")
    elif (prim["spearman_ci_high"] < 0).any():
        verdict = (NOT_SUPPORTED, f"{nice(score)} falls with " + " and ".join(
            nice(t) for t in prim.loc[prim["spearman_ci_high"] < 0, "target"]))
    else:
        verdict = (INCONCLUSIVE, "the Spearman intervals include 0")
    return table, dict(claim="more diversity, more dropout-like", statement=verdict[0], reason=verdict[1],
                       n_seeds=n, n_conditions=k)


# ----------------------------------------------------------------------------------------------- synthetic
def _paired(frame: pd.DataFrame, condition, column: str) -> tuple[dict, int]:
    """Condition minus baseline per (dataset, model, seed), averaged over datasets/models per seed, t across seeds
    (a baseline with one draw but a condition with several: the baseline's value is taken as fixed). Without
    several seeds: the point difference of the means. Returns (t_summary dict + means, n_draws)."""
    frame = frame.assign(_all=0)
    dm = [k for k in ("dataset", "model") if k in frame.columns] or ["_all"]
    key = dm + (["seed"] if "seed" in frame.columns else [])
    a = frame[frame["condition"] == condition].groupby(key)[column].mean()
    base = frame[frame["condition"] == BASELINE]
    b = base.groupby(key)[column].mean().reindex(a.index)
    if "seed" in key:
        fixed = base.groupby(dm)[column].mean().reindex(a.index.droplevel("seed")).to_numpy()
        b = b.fillna(pd.Series(fixed, index=a.index))
    diff = (a - b).dropna()
    if "seed" in key and diff.index.get_level_values("seed").nunique() > 1:
        per = diff.groupby(level="seed").mean()
        s = t_summary(per.to_numpy())
        draws = len(per)
    else:
        s = t_summary(np.array([diff.mean()]) if len(diff) else np.array([]))
        draws = 1 if len(diff) else 0
    return dict(s, condition_mean=float(a.mean()), baseline_mean=float(b.mean())), draws


def synthetic_claim(runs: pd.DataFrame, diversity: pd.DataFrame | None, conditions, score: str = "vendi_weighted",
                    outcomes=("ood_accuracy", "ood_ece"), alpha: float = 0.05,
                    min_seeds: int = 3) -> tuple[pd.DataFrame, dict]:
    """Claim 2 (synthetic data adds diversity and helps OOD): each mix condition against the baseline.

    Table: one row per (condition, quantity): scope, condition, kind (diversity | outcome), quantity, n_seeds
    (paired draws), condition_mean, baseline_mean, difference, ci_low, ci_high (95 % t across seeds), t, p, p_adj
    (BH over all rows), better (difference in the better direction and adjusted p < alpha), worse, statement.
    Diversity with one draw per condition: the point difference, no CI, no p.
    Rule per condition: fewer seeds than min_seeds -> inconclusive; `score` lower (better=False, worse=True)
    or OOD hurt (an outcome worse and none better) -> not supported; `score` higher AND OOD helped (an outcome
    better and none worse) -> supported; else inconclusive. Over all conditions: supported if at least one is
    supported and none is not supported; not supported if at least one is not supported and none is supported;
    else inconclusive.
    """
    rows = []
    for c in conditions:
        items = [("diversity", s, diversity) for s in VENDI_SCORES if diversity is not None and s in diversity]
        items += [("outcome", o, runs) for o in outcomes if o in runs.columns]
        for kind, q, frame in items:
            s, draws = _paired(frame, c, q)
            rows.append(dict(scope=SCOPE, condition=c, kind=kind, quantity=q, n_seeds=s["n"] if draws > 1 else 0,
                             n_draws=draws, condition_mean=s["condition_mean"], baseline_mean=s["baseline_mean"],
                             difference=s["mean"], ci_low=s["ci_low"], ci_high=s["ci_high"], t=s["t"], p=s["p"]))
    table = pd.DataFrame(rows)
    if table.empty:
        return table, dict(claim="synthetic data adds diversity and helps OOD", statement=INCONCLUSIVE,
                           reason="no synthetic conditions", n_seeds=0, n_conditions=0)
    table.insert(table.columns.get_loc("p") + 1, "p_adj", bh(table["p"]))
    sign = np.where(table["quantity"].isin(LOWER_IS_BETTER), -1.0, 1.0)
    sig = table["p_adj"] < alpha
    table["better"] = sig & (sign * table["difference"] > 0)
    table["worse"] = sig & (sign * table["difference"] < 0)
    statements = []
    for c, part in table.groupby("condition", sort=False):
        out, div = part[part["kind"] == "outcome"], part[part["quantity"] == score]
        n = int(out["n_seeds"].min()) if len(out) else 0
        if n < min_seeds:
            st = (INCONCLUSIVE, f"fewer than {min_seeds} seeds (n = {n})")
        elif div["worse"].any() or (out["worse"].any() and not out["better"].any()):
            st = (NOT_SUPPORTED, "less diverse than the real-only set" if div["worse"].any() else "OOD is worse")
        elif div["better"].any() and out["better"].any() and not out["worse"].any():
            st = (SUPPORTED, "more diverse and better OOD")
        else:
            st = (INCONCLUSIVE, "diversity: " + ("higher" if div["better"].any() else "no CI (one draw)"
                                                 if (div["n_draws"] <= 1).all() else "not clearly higher")
                  + "; OOD: " + ("better" if out["better"].any() else "not clearly better"))
        statements.append((c, *st))
    table["statement"] = table["condition"].map({c: f"{s}: {r}" for c, s, r in statements})
    kinds = [s for _, s, _ in statements]
    overall = (SUPPORTED if SUPPORTED in kinds and NOT_SUPPORTED not in kinds else
               NOT_SUPPORTED if NOT_SUPPORTED in kinds and SUPPORTED not in kinds else INCONCLUSIVE)
    return table, dict(claim="synthetic data adds diversity and helps OOD", statement=overall,
                       reason="; ".join(f"{c}: {s} ({r})" for c, s, r in statements),
                       n_seeds=int(table.loc[table["kind"] == "outcome", "n_seeds"].min()) if len(table) else 0,
                       n_conditions=len(statements))


# ----------------------------------------------------------------------------------------------- additivity
def additivity(cube: Cube, combined: dict, margin: pd.DataFrame, alpha: float = 0.05, fdr: bool = True,
               min_seeds: int = 3) -> pd.DataFrame:
    """Does a combined condition's effect equal the sum of its data condition's and regularizer condition's?

    `combined`: {combined condition: (data condition, regularizer condition)}. Per seed and metric the interaction
    I = E(combined) - E(data) - E(regularizer) (per-seed effects, paired by seed); across seeds: mean, 95 % t CI,
    p (ttest_1samp), p_adj (BH over all rows), TOST against the metric's margin (90 % CI, p_tost, p_tost_adj).
    verdict: fewer seeds than min_seeds -> inconclusive; the 90 % CI of I inside +-margin -> "additive within CI";
    I differs from 0 (p < alpha, adjusted when fdr) in the direction of the sum -> "super-additive", against it
    -> "sub-additive"; else inconclusive.
    Columns: scope, condition, data_condition, regularizer_condition, metric, n_seeds, combined, data, regularizer,
    sum, interaction, ci_low, ci_high, p, p_adj, margin, ci90_low, ci90_high, p_tost, p_tost_adj, verdict,
    reason.
    """
    per = cube.seed_means()
    mg = margin.set_index("metric")["margin"]
    rows = []
    for c, (data, reg) in combined.items():
        missing = [x for x in (c, data, reg) if x not in cube.conditions]
        for j, metric in enumerate(cube.metrics):
            row = dict(scope=SCOPE, condition=c, data_condition=data, regularizer_condition=reg, metric=metric)
            if missing:
                rows.append(dict(row, n_seeds=0, verdict=INCONCLUSIVE,
                                 reason=f"not in the layer table: {', '.join(missing)}"))
                continue
            a, d, r = (per[cube.index(x), :, j] for x in (c, data, reg))
            inter = a - d - r
            s, e = t_summary(inter), tost(inter, mg.get(metric, np.nan), alpha)
            ok = np.isfinite(inter)
            rows.append(dict(row, n_seeds=s["n"], combined=np.mean(a[ok]) if ok.any() else np.nan,
                             data=np.mean(d[ok]) if ok.any() else np.nan,
                             regularizer=np.mean(r[ok]) if ok.any() else np.nan,
                             sum=np.mean((d + r)[ok]) if ok.any() else np.nan, interaction=s["mean"],
                             ci_low=s["ci_low"], ci_high=s["ci_high"], p=s["p"], margin=mg.get(metric, np.nan),
                             ci90_low=e["ci90_low"], ci90_high=e["ci90_high"], p_tost=e["p_tost"]))
    cols = ["scope", "condition", "data_condition", "regularizer_condition", "metric", "n_seeds", "combined", "data",
            "regularizer", "sum", "interaction", "ci_low", "ci_high", "p", "p_adj", "margin", "ci90_low",
            "ci90_high", "p_tost", "p_tost_adj", "verdict", "reason"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    table[["verdict", "reason"]] = table[["verdict", "reason"]].astype(object)  # all-NaN columns would be float
    table["p_adj"], table["p_tost_adj"] = bh(table["p"]), bh(table["p_tost"])
    p, q = (table["p_adj"], table["p_tost_adj"]) if fdr else (table["p"], table["p_tost"])
    for i, r in table.iterrows():
        if isinstance(r["verdict"], str):
            continue
        if r["n_seeds"] < min_seeds:
            v = (INCONCLUSIVE, f"fewer than {min_seeds} seeds (n = {r['n_seeds']})")
        elif q[i] < alpha:
            v = ("additive within CI", f"90 % CI of the interaction inside +-{r['margin']:.3g}")
        elif p[i] < alpha:
            kind = "super-additive" if np.sign(r["interaction"]) == np.sign(r["sum"]) else "sub-additive"
            ci = f"CI {r['ci_low']:+.3g} to {r['ci_high']:+.3g}"
            v = (kind, f"interaction {r['interaction']:+.3g} ({ci}) vs sum {r['sum']:+.3g}")
        else:
            v = (INCONCLUSIVE, "interaction neither shown within the margin nor different from 0")
        table.at[i, "verdict"], table.at[i, "reason"] = v
    return table
