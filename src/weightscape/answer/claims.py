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

from .dose import AT_END, BELOW, BEYOND, WITHIN
from .inference import bh, interval, selection_level, t_summary, tost
from .seeds import SCOPE, Cube

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


# ----------------------------------------------------------------------------------------------- correlations
def spearman(x, y, level: float = 0.95) -> dict:
    """Spearman's rho (scipy.stats.spearmanr; ties get average ranks) with a Fisher-z interval and test, using the
    Bonett & Wright (2000) variance (1 + rho^2 / 2) / (n - 3), so that interval and p-value agree: the interval
    at `level` excludes 0 exactly when p < 1 - level. NaN below 4 pairs or when either variable is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = ~np.isnan(x) & ~np.isnan(y)  # +-inf ranks at the ends (censored placements)
    x, y = x[ok], y[ok]
    out = dict(n=len(x), spearman_rho=np.nan, spearman_ci_low=np.nan, spearman_ci_high=np.nan, spearman_p=np.nan)
    if len(x) < 4 or len(set(x)) < 2 or len(set(y)) < 2:
        return out
    rho = float(stats.spearmanr(x, y).statistic)
    out["spearman_rho"] = rho
    if abs(rho) >= 1:  # a perfect ranking: the Fisher z is infinite
        out.update(spearman_ci_low=rho, spearman_ci_high=rho, spearman_p=0.0)
        return out
    se = np.sqrt((1 + rho ** 2 / 2) / (len(x) - 3))
    z = np.arctanh(rho)
    q = stats.norm.ppf(0.5 + level / 2)
    out.update(spearman_ci_low=float(np.tanh(z - q * se)), spearman_ci_high=float(np.tanh(z + q * se)),
               spearman_p=float(2 * stats.norm.sf(abs(z) / se)))
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


def dropout_rank_value(placement: pd.DataFrame) -> pd.Series:
    """condition -> a value whose ranks are the conditions' order along the dropout curve: the point estimate
    (within the measured levels or at the largest), 0 below the smallest level, inf beyond the largest (censored
    placements tie at the bounds); NaN off the curve or where dropout places nothing."""
    if placement.empty:
        return pd.Series(dtype=float)
    dp = placement[placement["regularizer"] == DROPOUT].set_index("condition")
    value = dp["level"].where(dp["position"].isin([WITHIN, AT_END]))
    value = value.mask(dp["position"] == BELOW, 0.0).mask(dp["position"] == BEYOND, np.inf)
    return value.astype(float)


CLAIM1 = "more diversity, more dropout-like"
CLAIM2 = "synthetic data adds diversity and helps OOD"
TARGETS = ("equivalent_dropout_p", "effect_size")


def diversity_claim(effects: pd.DataFrame, placement: pd.DataFrame, diversity: pd.DataFrame | None, families,
                    cube: Cube, noise: pd.DataFrame, score: str = "vendi_weighted", alpha: float = 0.05,
                    min_seeds: int = 3, min_conditions: int = 4) -> tuple[pd.DataFrame, dict]:
    """Claim 1 (more diversity, more dropout-like), over EVERY condition of `families` (diversity by default).

    Targets: equivalent_dropout_p = the condition's rank along the dropout curve (`dropout_rank_value`: censored
    placements tie at the bounds; off-curve conditions have none and are named), effect_size = RMS over metrics
    of mean / paired noise. Table: one row per (Vendi score, target): scope, score, target, n_conditions,
    n_seeds, spearman_rho, spearman_ci_low, spearman_ci_high (the interval at ci_level), spearman_p,
    spearman_p_adj (BH over all rows), ci_level, decision (rises | falls | not shown), left_out.
    Rule, on the `score` row of equivalent_dropout_p: fewer seeds than min_seeds, dropout placing nothing, or
    fewer than min_conditions ranked conditions -> inconclusive; decision rises -> supported; falls -> not
    supported; else inconclusive. The reason says when the three Vendi scores decide differently.
    """
    e = effects[effects["family"].isin(families)]
    conditions = list(dict.fromkeys(e["condition"]))
    sd = noise.set_index("metric")["noise_sd"]
    scaled = e["mean"] / e["metric"].map(sd).where(lambda v: v > 0)
    size = scaled.groupby(e["condition"]).apply(lambda v: float(np.sqrt(np.mean(v ** 2)))).reindex(conditions)
    n_seeds = int(e["n_seeds"].min()) if len(e) else 0
    rank = dropout_rank_value(placement).reindex(conditions)
    statement = dict(claim=CLAIM1, statement=INCONCLUSIVE, reason="", detail="", n_seeds=n_seeds, n_conditions=0)
    if diversity is None or not conditions:
        return pd.DataFrame(), dict(statement, reason="no diversity table" if diversity is None else
                                    f"no {', '.join(families)} conditions")
    div = diversity_by_condition(diversity).reindex(conditions)
    rows = []
    for sc in [s for s in VENDI_SCORES if s in div.columns]:
        for target, y in (("equivalent_dropout_p", rank), ("effect_size", size)):
            x = div[sc].to_numpy(dtype=float)
            used = ~np.isnan(x) & ~np.isnan(y.to_numpy(dtype=float))
            rows.append(dict(scope=SCOPE, score=sc, target=target, n_seeds=n_seeds,
                             left_out=",".join(np.array(conditions)[~used]), _x=x, _y=y.to_numpy(dtype=float)))
    table = pd.DataFrame(rows)
    level = 0.95
    if len(table):
        first = [spearman(r["_x"], r["_y"]) for _, r in table.iterrows()]
        level = selection_level([f["spearman_p"] for f in first], alpha, fdr=True)
        stats_rows = [spearman(r["_x"], r["_y"], level) for _, r in table.iterrows()]
        table = table.drop(columns=["_x", "_y"])
        for k in ("n", "spearman_rho", "spearman_ci_low", "spearman_ci_high", "spearman_p"):
            table[k if k != "n" else "n_conditions"] = [f[k] for f in stats_rows]
        table["spearman_p_adj"] = bh(table["spearman_p"])
        table["ci_level"] = level
        table["decision"] = np.where(table["spearman_p_adj"] < alpha,
                                     np.where(table["spearman_rho"] > 0, "rises", "falls"), "not shown")
        table = table[["scope", "score", "target", "n_conditions", "n_seeds", "spearman_rho", "spearman_ci_low",
                       "spearman_ci_high", "spearman_p", "spearman_p_adj", "ci_level", "decision", "left_out"]]
    prim = table[(table["score"] == score) & (table["target"] == TARGETS[0])] if len(table) else table
    k = int(prim["n_conditions"].iat[0]) if len(prim) else 0
    placed = rank.notna().any()
    if prim.empty:
        verdict = (INCONCLUSIVE, f"no {nice(score)} in the diversity table")
    elif n_seeds < min_seeds:
        verdict = (INCONCLUSIVE, f"fewer than {min_seeds} seeds (n = {n_seeds})")
    elif not placed:
        verdict = (INCONCLUSIVE, "dropout places no condition on this lens (it moves no metric, or every "
                                 "condition is off its curve), so there is no order along dropout to correlate")
    elif k < min_conditions:
        verdict = (INCONCLUSIVE, f"only {k} conditions are ranked along dropout (need {min_conditions})")
    else:
        r = prim.iloc[0]
        said = {"rises": SUPPORTED, "falls": NOT_SUPPORTED}.get(r["decision"], INCONCLUSIVE)
        verdict = (said, f"{nice(score)} vs the order along dropout: Spearman rho {r['spearman_rho']:+.2f} "
                         f"(CI {r['spearman_ci_low']:+.2f} to {r['spearman_ci_high']:+.2f}, {k} conditions)")
    detail = []
    if len(table):
        along = table[table["target"] == TARGETS[0]]
        scores = ", ".join(f"{nice(r['score'])} {r['decision']} (rho {r['spearman_rho']:+.2f})"
                           for _, r in along.iterrows() if np.isfinite(r["spearman_rho"]))
        if scores:
            disagree = along["decision"].nunique() > 1
            detail.append(("the three Vendi scores disagree: " if disagree else "every Vendi score agrees: ")
                          + scores)
    left = prim["left_out"].iat[0] if len(prim) else ""
    if left and placed:
        detail.append(f"not ranked (off the dropout curve): {left.replace(',', ', ')}")
    return table, dict(statement, statement=verdict[0], reason=verdict[1], detail="; ".join(detail),
                       n_conditions=k)


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
        sample = diff.groupby(level="seed").mean().to_numpy()
    else:
        sample = np.array([diff.mean()]) if len(diff) else np.array([])
    s = t_summary(sample)
    return dict(s, sample=sample, condition_mean=float(a.mean()), baseline_mean=float(b.mean())), len(sample)


def synthetic_claim(runs: pd.DataFrame, diversity: pd.DataFrame | None, conditions, score: str = "vendi_weighted",
                    outcomes=("ood_accuracy", "ood_ece"), alpha: float = 0.05,
                    min_seeds: int = 3) -> tuple[pd.DataFrame, dict]:
    """Claim 2 (synthetic data adds diversity and helps OOD): each mix condition against the baseline.

    Table: one row per (condition, quantity): scope, condition, kind (diversity | outcome), quantity, n_seeds
    (paired draws), condition_mean, baseline_mean, difference, ci_low, ci_high (the t-interval across seeds at
    ci_level, the level at which it agrees with the BH decision: seeds.selection_level), t, p, p_adj (BH over all
    rows), ci_level, better (difference in the better direction and adjusted p < alpha), worse, statement.
    Diversity with one draw per condition: the point difference, no CI, no p.
    Rule per condition: fewer seeds than min_seeds -> inconclusive; `score` lower (better=False, worse=True)
    or OOD hurt (an outcome worse and none better) -> not supported; `score` higher AND OOD helped (an outcome
    better and none worse) -> supported; else inconclusive. Over all conditions: supported if at least one is
    supported and none is not supported; not supported if at least one is not supported and none is supported;
    else inconclusive.
    """
    rows, samples = [], []
    for c in conditions:
        items = [("diversity", s, diversity) for s in VENDI_SCORES if diversity is not None and s in diversity]
        items += [("outcome", o, runs) for o in outcomes if o in runs.columns]
        for kind, q, frame in items:
            s, draws = _paired(frame, c, q)
            samples.append(s["sample"])
            rows.append(dict(scope=SCOPE, condition=c, kind=kind, quantity=q, n_seeds=s["n"] if draws > 1 else 0,
                             n_draws=draws, condition_mean=s["condition_mean"], baseline_mean=s["baseline_mean"],
                             difference=s["mean"], t=s["t"], p=s["p"]))
    table = pd.DataFrame(rows)
    if table.empty:
        return table, dict(claim=CLAIM2, statement=INCONCLUSIVE, reason="no synthetic conditions", detail="",
                           n_seeds=0, n_conditions=0)
    table.insert(table.columns.get_loc("p") + 1, "p_adj", bh(table["p"]))
    table["ci_level"] = selection_level(table["p"], alpha, fdr=True)
    ci = [interval(x, table["ci_level"].iat[0]) for x in samples]
    table.insert(table.columns.get_loc("difference") + 1, "ci_low", [c[0] for c in ci])
    table.insert(table.columns.get_loc("ci_low") + 1, "ci_high", [c[1] for c in ci])
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
    rule = {SUPPORTED: "at least one mix is supported and none contradicts it",
            NOT_SUPPORTED: "at least one mix contradicts it and none supports it",
            INCONCLUSIVE: "no mix decides it, or the mixes disagree"}[overall]
    return table, dict(claim=CLAIM2, statement=overall, reason=rule,
                       detail="; ".join(f"{c}: {s} ({r})" for c, s, r in statements),
                       n_seeds=int(table.loc[table["kind"] == "outcome", "n_seeds"].min()) if len(table) else 0,
                       n_conditions=len(statements))


# ----------------------------------------------------------------------------------------------- additivity
def additivity(cube: Cube, combined: dict, margin: pd.DataFrame, alpha: float = 0.05, fdr: bool = True,
               min_seeds: int = 3) -> pd.DataFrame:
    """Does a combined condition's effect equal the sum of its data condition's and regularizer condition's?

    `combined`: {combined condition: (data condition, regularizer condition)}. Per seed and metric the interaction
    I = E(combined) - E(data) - E(regularizer) (per-seed effects, paired by seed); across seeds: mean, t-test
    against 0 (p, p_adj: BH over all rows when `fdr`), TOST against the metric's margin (p_tost, p_tost_adj), each
    with the interval of its decision (ci_* at ci_level, ci90_* at ci90_level: seeds.selection_level).
    verdict: fewer seeds than min_seeds -> inconclusive; equivalent (the ci90 interval inside +-margin) ->
    "additive within the margin"; I detected (the ci interval excludes 0) in the direction of the sum ->
    "super-additive", against it -> "sub-additive"; else inconclusive.
    Columns: scope, condition, data_condition, regularizer_condition, metric, n_seeds, combined, data, regularizer,
    sum, interaction, ci_low, ci_high, ci_level, p, p_adj, margin, ci90_low, ci90_high, ci90_level, p_tost,
    p_tost_adj, verdict, reason.
    """
    per = cube.seed_means()
    mg = margin.set_index("metric")["margin"]
    rows, samples = [], []
    for c, (data, reg) in combined.items():
        missing = [x for x in (c, data, reg) if x not in cube.conditions]
        for j, metric in enumerate(cube.metrics):
            row = dict(scope=SCOPE, condition=c, data_condition=data, regularizer_condition=reg, metric=metric)
            if missing:
                samples.append(np.array([]))
                rows.append(dict(row, n_seeds=0, verdict=INCONCLUSIVE,
                                 reason=f"not in the layer table: {', '.join(missing)}"))
                continue
            a, d, r = (per[cube.index(x), :, j] for x in (c, data, reg))
            inter = a - d - r
            samples.append(inter)
            s, e = t_summary(inter), tost(inter, mg.get(metric, np.nan), alpha)
            ok = np.isfinite(inter)
            rows.append(dict(row, n_seeds=s["n"], combined=np.mean(a[ok]) if ok.any() else np.nan,
                             data=np.mean(d[ok]) if ok.any() else np.nan,
                             regularizer=np.mean(r[ok]) if ok.any() else np.nan,
                             sum=np.mean((d + r)[ok]) if ok.any() else np.nan, interaction=s["mean"], p=s["p"],
                             margin=mg.get(metric, np.nan), p_tost=e["p_tost"]))
    cols = ["scope", "condition", "data_condition", "regularizer_condition", "metric", "n_seeds", "combined", "data",
            "regularizer", "sum", "interaction", "ci_low", "ci_high", "ci_level", "p", "p_adj", "margin",
            "ci90_low", "ci90_high", "ci90_level", "p_tost", "p_tost_adj", "verdict", "reason"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    table[["verdict", "reason"]] = table[["verdict", "reason"]].astype(object)  # all-NaN columns would be float
    adjust = bh if fdr else (lambda p: p)
    table["p_adj"], table["p_tost_adj"] = adjust(table["p"]), adjust(table["p_tost"])
    table["ci_level"] = selection_level(table["p"], alpha, fdr)
    table["ci90_level"] = selection_level(table["p_tost"], alpha, fdr, two_sided=False)
    for name, level in (("ci", "ci_level"), ("ci90", "ci90_level")):
        bounds = [interval(x, table[level].iat[0]) if len(x) else (np.nan, np.nan) for x in samples]
        table[f"{name}_low"], table[f"{name}_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    for i, r in table.iterrows():
        if isinstance(r["verdict"], str):
            continue
        if r["n_seeds"] < min_seeds:
            v = (INCONCLUSIVE, f"fewer than {min_seeds} seeds (n = {r['n_seeds']})")
        elif r["p_tost_adj"] < alpha:
            v = ("additive within the margin", f"interaction {r['interaction']:+.3g} (CI {r['ci90_low']:+.3g} to "
                                               f"{r['ci90_high']:+.3g}) inside +-{r['margin']:.3g}")
        elif r["p_adj"] < alpha:
            kind = "super-additive" if np.sign(r["interaction"]) == np.sign(r["sum"]) else "sub-additive"
            v = (kind, f"interaction {r['interaction']:+.3g} (CI {r['ci_low']:+.3g} to {r['ci_high']:+.3g}) vs sum "
                       f"{r['sum']:+.3g}")
        else:
            v = (INCONCLUSIVE, "interaction neither shown within the margin nor different from 0")
        table.at[i, "verdict"], table.at[i, "reason"] = v
    return table
