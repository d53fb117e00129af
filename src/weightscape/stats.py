"""Family comparison of spectral (WeightWatcher) metrics and of run outcomes (paper, "Spectral analysis").

Procedure (per metric):
  1. Delta_c(l) = metric(fine-tuned, condition c, layer l) - metric(pretrained, layer l), same dataset/model/seed;
  2. relative effect R_c(l) = Delta_c(l) - Delta_baseline(l), same dataset/model/seed;
  3. per family (diversity, dropout, weight_decay, synthetic) and layer: mean over the family's conditions, then
     over datasets/models (per seed), then over seeds -> per-layer family effect;
  4. one-way ANOVA across families over layers, pairwise Student and Welch t-tests, Cohen's d, Pearson r;
  5. distances of each diversity/synthetic condition's per-layer vector to the dropout and weight-decay family means.
Only numpy, pandas and scipy are used; every test statistic comes from scipy.stats.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from weightscape.io import write_csv
from weightscape.names import (ALL_LAYERS, BASELINE, COMPARED_FAMILIES, DATA_FAMILIES, FINETUNED,
                               LOWER_IS_BETTER, OUTCOMES, PRETRAINED, REFERENCE_KEY, REGULARIZERS,
                               SPECTRAL_METRICS)

METRICS = SPECTRAL_METRICS
#: the structural columns of a spectra table that the per-layer long tables carry (layer order and kind, ESD size)
LAYER_STRUCTURE = ("layer_id", "N", "M", "rf", "num_evals", "dead_taps")
GROUP = list(REFERENCE_KEY)
LEVEL = 0.95


# ----------------------------------------------------------------------------------------------- helpers
def _metrics(frame: pd.DataFrame) -> list[str]:
    return [m for m in METRICS if m in frame.columns]


def t_interval(values) -> tuple[float, float, float, int]:
    """Mean, 95 % t-interval (scipy.stats.t) and count of the finite values; NaN bounds for fewer than two. The one
    interval helper of the statistics tables."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, np.nan, np.nan, n
    sem = stats.sem(x)
    if sem == 0:
        return mean, mean, mean, n
    low, high = stats.t.interval(LEVEL, df=n - 1, loc=mean, scale=sem)
    return mean, float(low), float(high), n


def _cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d with the pooled standard deviation (ddof=1 variances)."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return np.nan
    pooled = np.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else np.nan


def _group_tests(groups: dict[str, np.ndarray], paired: bool) -> dict:
    """ANOVA across `groups` plus, per pair, Student/Welch t, Cohen's d and (if `paired`) Pearson r."""
    row: dict = {"families": ",".join(groups)}
    for name, x in groups.items():
        row[f"mean_{name}"] = float(np.mean(x)) if len(x) else np.nan
        row[f"n_{name}"] = len(x)
    usable = [x for x in groups.values() if len(x) >= 2]
    if len(usable) >= 2 and len(usable) == len(groups):
        res = stats.f_oneway(*usable)
        row["F"], row["p"] = float(res.statistic), float(res.pvalue)
    else:
        row["F"], row["p"] = np.nan, np.nan
    for a, b in combinations(groups, 2):
        x, y, pair = groups[a], groups[b], f"{a}_vs_{b}"
        ok = len(x) >= 2 and len(y) >= 2
        student = stats.ttest_ind(x, y, equal_var=True) if ok else None
        welch = stats.ttest_ind(x, y, equal_var=False) if ok else None
        row[f"t_student_{pair}"] = float(student.statistic) if ok else np.nan
        row[f"p_student_{pair}"] = float(student.pvalue) if ok else np.nan
        row[f"t_welch_{pair}"] = float(welch.statistic) if ok else np.nan
        row[f"p_welch_{pair}"] = float(welch.pvalue) if ok else np.nan
        row[f"cohens_d_{pair}"] = _cohens_d(x, y)
        if paired:
            good = ok and len(x) >= 3 and np.std(x) > 0 and np.std(y) > 0
            r = stats.pearsonr(x, y) if good else None
            row[f"pearson_r_{pair}"] = float(r.statistic) if good else np.nan
            row[f"pearson_p_{pair}"] = float(r.pvalue) if good else np.nan
    return row


# ----------------------------------------------------------------------------------------------- deltas
def layer_deltas(layers: pd.DataFrame) -> pd.DataFrame:
    """Long table of per-layer changes: one row per (dataset, model, seed, condition, longname, metric).

    Columns: dataset, model, seed, condition, family, longname, layer_type, the fine-tuned table's LAYER_STRUCTURE
    columns where present (layer_id, N, M, rf, num_evals, dead_taps), metric, pretrained, finetuned,
    delta (finetuned - pretrained of the same dataset/model/seed; if that seed has no pretrained row the
    dataset/model's single pretrained table is used; a run with its own pretrained table, `pretrained_for` = its
    condition as weightscape.manifest writes it, is taken against that one), relative (delta - delta of the baseline of the same
    dataset/model/seed). Only rows with status "success"; WeightWatcher's failed-fit alpha = -1 counts as NaN.
    Layers whose every metric delta is exactly 0 in every run (frozen) are dropped; they are listed in
    `result.attrs["frozen_layers"]` (list of dicts dataset/model/longname) -- see `frozen_layers()`.
    """
    metrics = _metrics(layers)
    if not metrics:
        raise ValueError(f"layers table has none of the metric columns {METRICS}")
    df = layers.copy()
    if "seed" not in df.columns:
        df["seed"] = 0
    if "status" in df.columns:
        df = df[df["status"].astype(str) == "success"]
    if "alpha" in df.columns:
        df["alpha"] = df["alpha"].where(df["alpha"] != -1)
    df["longname"] = df["longname"].astype(str)
    if "layer_type" not in df.columns:
        df["layer_type"] = ""
    keys = GROUP + ["longname"]
    pre = df[df["stage"] == PRETRAINED]
    fin = df[df["stage"] == FINETUNED]
    if fin.empty or pre.empty:
        raise ValueError("layers table needs both stage=pretrained and stage=finetuned rows")
    own = pre.iloc[:0]  # published per-run analyses: a run's own starting point (weightscape.manifest)
    if "pretrained_for" in pre.columns:
        is_own = pre["pretrained_for"].fillna("") != ""
        own, pre = pre[is_own], pre[~is_own]
    pre_seed = pre.drop_duplicates(keys).set_index(keys)[metrics]
    pre_any = pre.drop_duplicates(["dataset", "model", "longname"]).set_index(["dataset", "model", "longname"])[metrics]
    fin_idx = fin.set_index(keys).index
    pre_vals = pre_seed.reindex(fin_idx).to_numpy(dtype=float)
    fallback = pre_any.reindex(fin.set_index(["dataset", "model", "longname"]).index).to_numpy(dtype=float)
    no_seed = ~fin_idx.isin(pre_seed.index)
    pre_vals[no_seed] = fallback[no_seed]
    if len(own):
        own_idx = GROUP + ["pretrained_for", "longname"]
        own_vals = own.drop_duplicates(own_idx).set_index(own_idx)[metrics]
        run_idx = pd.MultiIndex.from_frame(fin[GROUP + ["condition", "longname"]], names=own_idx)
        has_own = run_idx.isin(own_vals.index)
        pre_vals[has_own] = own_vals.reindex(run_idx[has_own]).to_numpy(dtype=float)
    pre_vals = pd.DataFrame(pre_vals, columns=metrics)
    base = fin[fin["family"] == BASELINE]
    if base.empty:
        raise ValueError("layers table has no baseline (family=baseline) fine-tuned rows")
    id_cols = keys + ["condition", "family", "layer_type"] + [c for c in LAYER_STRUCTURE if c in fin.columns]
    out = []
    for metric in metrics:
        part = fin[id_cols].copy()
        part["metric"] = metric
        part["pretrained"] = pre_vals[metric].to_numpy()
        part["finetuned"] = fin[metric].to_numpy(dtype=float)
        part["delta"] = part["finetuned"] - part["pretrained"]
        out.append(part)
    long = pd.concat(out, ignore_index=True)
    base_delta = (long[long["family"] == BASELINE].drop_duplicates(keys + ["metric"])
                  .set_index(keys + ["metric"])["delta"])
    long["relative"] = long["delta"].to_numpy() - base_delta.reindex(
        long.set_index(keys + ["metric"]).index).to_numpy()
    # frozen: all finite deltas exactly 0 (and at least one finite) for the layer across every run and metric
    layer_key = ["dataset", "model", "longname"]
    d = long["delta"]
    summary = long.assign(nonzero=d.notna() & (d != 0), finite=d.notna()).groupby(layer_key, sort=False)
    flags = summary[["nonzero", "finite"]].any()
    frozen = flags[~flags["nonzero"] & flags["finite"]].reset_index()[layer_key]
    if len(frozen):
        drop = long.set_index(layer_key).index.isin(frozen.set_index(layer_key).index)
        long = long[~drop].reset_index(drop=True)
    long.attrs["frozen_layers"] = frozen.to_dict("records")
    return long


def frozen_layers(deltas: pd.DataFrame) -> pd.DataFrame:
    """The frozen layers (dataset, model, longname) that `layer_deltas` excluded."""
    return pd.DataFrame(deltas.attrs.get("frozen_layers", []), columns=["dataset", "model", "longname"])


# ----------------------------------------------------------------------------------------------- family effects
def _per_seed(deltas: pd.DataFrame, by: str) -> pd.DataFrame:
    """Relative effect per (`by`, seed, longname, metric): mean over conditions, then over datasets/models."""
    d = deltas[deltas[by].notna()]
    per = d.groupby(["dataset", "model", by, "seed", "longname", "metric"], sort=False)["relative"].mean()
    return per.groupby([by, "seed", "longname", "metric"], sort=False).mean().reset_index()


def _layer_effects(deltas: pd.DataFrame, by: str = "family") -> pd.DataFrame:
    """Per (`by`, longname, metric): mean over seeds of `_per_seed` (layer order of first appearance)."""
    per = _per_seed(deltas, by)
    return per.groupby([by, "longname", "metric"], sort=False)["relative"].mean().reset_index()


def _compared(deltas: pd.DataFrame) -> list[str]:
    present = set(deltas["family"].unique())
    return [f for f in COMPARED_FAMILIES if f in present]


def family_effects(deltas: pd.DataFrame) -> pd.DataFrame:
    """Family means of the relative effect, per layer (scope="layer") and over layers (scope="overall").

    Columns: scope, family, metric, longname (ALL_LAYERS for overall), layer_type, mean, n_seeds, ci_low_seeds,
    ci_high_seeds (95 % t-interval across seeds), n_layers, ci_low_layers, ci_high_layers (95 % t-interval
    across the per-layer means; overall rows only), ci_low / ci_high (the seeds' interval when there are several
    seeds, else the layers'). Per-layer effects are first averaged over datasets/models.
    The overall `mean` is the mean of the per-layer means; its seed interval is built from per-seed overall means.
    """
    deltas = deltas[deltas["family"].isin(_compared(deltas))]
    per = _per_seed(deltas, "family")
    ltype = deltas.drop_duplicates("longname").set_index("longname")["layer_type"]
    rows = []
    for (family, longname, metric), g in per.groupby(["family", "longname", "metric"], sort=False):
        mean, low, high, n = t_interval(g["relative"])
        rows.append(dict(scope="layer", family=family, metric=metric, longname=longname,
                         layer_type=ltype.get(longname, ""), mean=mean, n_seeds=n, ci_low_seeds=low,
                         ci_high_seeds=high, n_layers=1, ci_low_layers=np.nan, ci_high_layers=np.nan))
    layer_rows = pd.DataFrame(rows)
    overall = []
    for (family, metric), g in per.groupby(["family", "metric"], sort=False):
        seed_means = g.groupby("seed")["relative"].mean()
        _, s_low, s_high, n_seeds = t_interval(seed_means)
        lr = layer_rows[(layer_rows["family"] == family) & (layer_rows["metric"] == metric)]
        mean, l_low, l_high, n_layers = t_interval(lr["mean"])
        overall.append(dict(scope="overall", family=family, metric=metric, longname=ALL_LAYERS, layer_type="", mean=mean,
                            n_seeds=n_seeds, ci_low_seeds=s_low, ci_high_seeds=s_high, n_layers=n_layers,
                            ci_low_layers=l_low, ci_high_layers=l_high))
    effects = pd.concat([pd.DataFrame(overall), layer_rows], ignore_index=True)
    # the interval reports use: across seeds when there are several, else (one seed) across layers
    several = effects["n_seeds"] > 1
    effects["ci_low"] = effects["ci_low_seeds"].where(several, effects["ci_low_layers"])
    effects["ci_high"] = effects["ci_high_seeds"].where(several, effects["ci_high_layers"])
    return effects


def family_tests(deltas: pd.DataFrame) -> pd.DataFrame:
    """One row per metric: ANOVA and pairwise tests across families over layers.

    The observations of a family are its per-layer effects (mean relative effect over its conditions, datasets/
    models and seeds); only layers where every compared family has a value are used, so the Pearson correlation
    pairs the same layers. Columns: metric, families, n_layers, mean_<family>, n_<family>, F, p (scipy.stats.
    f_oneway) and, per pair "<a>_vs_<b>" of (diversity, synthetic, dropout, weight_decay) present:
    t_student_, p_student_ (ttest_ind equal_var=True), t_welch_, p_welch_ (equal_var=False), cohens_d_ (pooled
    SD, a minus b), pearson_r_, pearson_p_ (scipy.stats.pearsonr).
    """
    families = _compared(deltas)
    effects = _layer_effects(deltas[deltas["family"].isin(families)])
    rows = []
    for metric in effects["metric"].unique():
        wide = (effects[effects["metric"] == metric].pivot(index="longname", columns="family", values="relative")
                .reindex(columns=families).dropna())
        groups = {f: wide[f].to_numpy(dtype=float) for f in families}
        rows.append({"metric": metric, "n_layers": len(wide), **_group_tests(groups, paired=True)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- distances
def _rms_ci(sq: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float, float]:
    """RMS = sqrt(mean(sq)) over layers and a percentile bootstrap CI over layers (scipy.stats.bootstrap)."""
    sq = sq[np.isfinite(sq)]
    if len(sq) == 0:
        return np.nan, np.nan, np.nan
    dist = float(np.sqrt(sq.mean()))
    if len(sq) < 2 or np.all(sq == sq[0]):
        return dist, dist, dist
    res = stats.bootstrap((sq,), lambda x, axis: np.sqrt(np.mean(x, axis=axis)), n_resamples=n_resamples,
                          confidence_level=LEVEL, method="percentile", rng=np.random.default_rng(seed))
    return dist, float(res.confidence_interval.low), float(res.confidence_interval.high)


def condition_distances(deltas: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Distance of each diversity/synthetic condition to the dropout and weight-decay family means.

    A condition's vector is its per-layer relative effect (mean over datasets/models, then seeds). Distance =
    RMS over layers of (condition - family mean) (= Euclidean / sqrt(n_layers)), per metric and for
    metric="all": every metric divided by the SD of the per-layer effects of all compared conditions and families
    (ddof=1), squared differences averaged over metrics within a layer, RMS over layers. 95 % CI: percentile
    bootstrap over layers (seeded). Columns: condition, family, metric, n_layers, distance_dropout,
    ci_low_dropout, ci_high_dropout, distance_weight_decay, ci_low_weight_decay, ci_high_weight_decay,
    closer_to (dropout | weight_decay | "tie"; "" when undefined).
    """
    targets = REGULARIZERS
    fam = _layer_effects(deltas[deltas["family"].isin(targets)])
    probes = deltas[deltas["family"].isin(DATA_FAMILIES)]
    cond = _layer_effects(probes, by="condition")
    fam_of = probes.drop_duplicates("condition").set_index("condition")["family"]
    metrics = list(dict.fromkeys(deltas["metric"]))
    scale = pd.concat([fam, cond]).groupby("metric")["relative"].std(ddof=1)
    rows = []
    for condition in cond["condition"].unique():
        c = cond[cond["condition"] == condition].pivot(index="longname", columns="metric", values="relative")
        sq_by_target = {}
        for t in targets:
            f = fam[fam["family"] == t].pivot(index="longname", columns="metric", values="relative")
            common = c.index.intersection(f.index)
            sq_by_target[t] = (c.loc[common] - f.loc[common]).reindex(columns=metrics) ** 2
        for metric in metrics + ["all"]:
            row = dict(condition=condition, family=fam_of[condition], metric=metric)
            for t in targets:
                sq = sq_by_target[t]
                if metric == "all":
                    ok = scale.reindex(metrics) > 0
                    vals = (sq.loc[:, ok[ok].index] / scale[ok[ok].index] ** 2).mean(axis=1).to_numpy()
                else:
                    vals = sq[metric].to_numpy(dtype=float)
                d, low, high = _rms_ci(vals, n_resamples, seed)
                row.update({f"distance_{t}": d, f"ci_low_{t}": low, f"ci_high_{t}": high})
                row["n_layers"] = int(np.isfinite(vals).sum())
            dd, dw = row["distance_dropout"], row["distance_weight_decay"]
            row["closer_to"] = ("" if not (np.isfinite(dd) and np.isfinite(dw)) else
                                "dropout" if dd < dw else "weight_decay" if dw < dd else "tie")
            rows.append(row)
    cols = ["condition", "family", "metric", "n_layers"] + [
        f"{k}_{t}" for t in targets for k in ("distance", "ci_low", "ci_high")] + ["closer_to"]
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------------------------- outcomes
def _difference_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean difference a - b of the finite values with a Welch 95 % interval (scipy.stats.ttest_ind); NaN bounds
    when either side has fewer than two values."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else np.nan
    if len(a) < 2 or len(b) < 2:
        return diff, np.nan, np.nan
    if a.var() == 0 and b.var() == 0:
        return diff, diff, diff
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(LEVEL)
    return diff, float(ci.low), float(ci.high)


def outcome_tests(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, outcome) for the outcomes of weightscape.names.OUTCOMES present.

    Observations are runs (conditions x seeds) of each family. Columns: dataset, model, outcome, families,
    mean_/n_/ci_low_/ci_high_<family> (95 % t-interval; baseline included for reference), F, p (f_oneway over
    the compared families), per pair t_student_, p_student_, t_welch_, p_welch_, cohens_d_ (no Pearson: runs of
    different families are not paired); per compared family diff_baseline_/diff_ci_low_/diff_ci_high_<family>
    (mean minus the baseline's, Welch 95 % interval); best_condition / best_value (the condition with the best
    mean, lower is better for weightscape.names.LOWER_IS_BETTER) and runs_per_condition_min / _max.
    """
    rows = []
    families = [f for f in COMPARED_FAMILIES if f in set(runs["family"])]
    for (dataset, model), part in runs.groupby(["dataset", "model"], sort=False):
        for outcome in [o for o in OUTCOMES if o in runs.columns]:
            groups = {f: part.loc[part["family"] == f, outcome].dropna().to_numpy(dtype=float) for f in families}
            row = {"dataset": dataset, "model": model, "outcome": outcome, **_group_tests(groups, paired=False)}
            values = {f: part.loc[part["family"] == f, outcome].to_numpy(dtype=float) for f in (BASELINE, *families)}
            for f, x in values.items():
                mean, low, high, n = t_interval(x)
                row.update({f"mean_{f}": mean, f"n_{f}": n, f"ci_low_{f}": low, f"ci_high_{f}": high})
            for f in families:
                diff, low, high = _difference_ci(values[f], values[BASELINE])
                row.update({f"diff_baseline_{f}": diff, f"diff_ci_low_{f}": low, f"diff_ci_high_{f}": high})
            by_condition = part.groupby("condition", sort=False)[outcome].mean()
            best = by_condition.idxmin() if outcome in LOWER_IS_BETTER else by_condition.idxmax()
            counts = part.groupby("condition", sort=False).size()
            row.update({"best_condition": best, "best_value": float(by_condition[best]),
                        "runs_per_condition_min": int(counts.min()), "runs_per_condition_max": int(counts.max())})
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- driver
def compare(layers: pd.DataFrame, runs: pd.DataFrame | None = None, out_dir: str | Path | None = None,
            n_resamples: int = 1000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Run the whole comparison; returns {"layer_deltas", "frozen_layers", "family_effects", "family_tests",
    "condition_distances"[, "outcome_tests"]} and, if `out_dir` is given, writes every table except
    layer_deltas as <name>.csv there atomically."""
    deltas = layer_deltas(layers)
    result = {"layer_deltas": deltas, "frozen_layers": frozen_layers(deltas),
              "family_effects": family_effects(deltas), "family_tests": family_tests(deltas),
              "condition_distances": condition_distances(deltas, n_resamples=n_resamples, seed=seed)}
    if runs is not None:
        result["outcome_tests"] = outcome_tests(runs)
    if out_dir is not None:
        for name, frame in result.items():
            if name != "layer_deltas":
                write_csv(Path(out_dir) / f"{name}.csv", frame)
    return result
