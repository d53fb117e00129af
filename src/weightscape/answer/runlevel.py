"""Run-level outcomes through the same across-seed lens as the spectral metrics: the loss curvature of each run
(runs.csv `hessian_trace`, `hessian_top_eig`, and the pretrained reference's `*_pretrained`; curvature.enabled).

Curvature is multiplicative (a flatter minimum halves it, a sharper one doubles it), so the change of a run is
taken on a log10 scale: Delta = log10(run) - log10(its pretrained reference), and the relative effect R = Delta -
the same seed's baseline Delta, averaged over datasets/models per seed. Across seeds: mean, 95 % t-interval, t-test
against 0, the noise floor (seed-to-seed SD of the baseline's Delta), and the equivalence test (TOST) against the
margin of `stats.equivalence_margin` (a rule named after the outcome, else `default`; its `regularizers` term uses
the strongest dropout / weight-decay effect on that outcome).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from weightscape.names import BASELINE, CURVATURE_OUTCOMES, REGULARIZERS

from .seeds import SCOPE, _margin_terms, bh, t_summary, tost

FLATTER, SHARPER, NO_CHANGE, UNDECIDED = ("flatter than baseline", "sharper than baseline",
                                          "no measurable change (equivalent within the margin)", "inconclusive")


def _relative(runs: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """(condition, family, seed, relative, delta): the log10 change from pretrained minus the baseline's."""
    r = runs[["dataset", "model", "condition", "family", "seed", outcome, f"{outcome}_pretrained"]].copy()
    r["delta"] = np.log10(r[outcome]) - np.log10(r[f"{outcome}_pretrained"])
    base = r[r["family"] == BASELINE].set_index(["dataset", "model", "seed"])["delta"]
    r["relative"] = r["delta"] - base.reindex(pd.MultiIndex.from_frame(r[["dataset", "model", "seed"]])).to_numpy()
    per_seed = r.groupby(["condition", "family", "seed"], sort=False)[["relative", "delta"]].mean()
    return per_seed.reset_index()


def curvature_effects(runs: pd.DataFrame, margin_spec: dict, alpha: float = 0.05, fdr: bool = True,
                      min_seeds: int = 3) -> pd.DataFrame:
    """One row per curvature outcome and non-baseline condition or family (`level` = condition | family).

    Columns: scope, outcome, level, name, family, n_seeds, mean, sd, ci_low, ci_high, t, p, p_adj, noise_sd,
    effect_in_noise, margin, ci90_low, ci90_high, p_tost, p_tost_adj, statement (flatter / sharper than baseline,
    no measurable change, inconclusive: on the adjusted p-values when `fdr`, "inconclusive" below min_seeds).
    Empty when runs.csv has no curvature columns.
    """
    outcomes = [o for o in CURVATURE_OUTCOMES if o in runs and f"{o}_pretrained" in runs]
    rows = []
    for outcome in outcomes:
        per = _relative(runs, outcome)
        baseline = per[per["family"] == BASELINE]
        noise_sd = float(baseline["delta"].std(ddof=1)) if len(baseline) > 1 else np.nan
        groups = [("condition", name, part) for name, part in per.groupby("condition", sort=False)]
        groups += [("family", family, part.groupby("seed")[["relative"]].mean().reset_index())
                   for family, part in per.groupby("family", sort=False)]
        strongest = max((abs(part["relative"].mean()) for _, part in per.groupby("condition", sort=False)
                         if part["family"].iat[0] in REGULARIZERS), default=np.nan)
        terms = _margin_terms(margin_spec.get(outcome, margin_spec.get("default")))
        candidates = [terms.get("absolute", np.nan), terms.get("noise", np.nan) * noise_sd,
                      terms.get("regularizers", np.nan) * strongest]
        margin = max([v for v in candidates if np.isfinite(v)], default=np.nan)
        for level, name, part in groups:
            family = name if level == "family" else part["family"].iat[0]
            if family == BASELINE:
                continue
            s, e = t_summary(part["relative"]), tost(part["relative"], margin, alpha)
            rows.append(dict(scope=SCOPE, outcome=outcome, level=level, name=name, family=family, n_seeds=s["n"],
                             mean=s["mean"], sd=s["sd"], ci_low=s["ci_low"], ci_high=s["ci_high"], t=s["t"],
                             p=s["p"], noise_sd=noise_sd,
                             effect_in_noise=s["mean"] / noise_sd if noise_sd > 0 else np.nan, margin=margin,
                             ci90_low=e["ci90_low"], ci90_high=e["ci90_high"], p_tost=e["p_tost"]))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table.insert(table.columns.get_loc("p") + 1, "p_adj", bh(table["p"]))
    table["p_tost_adj"] = bh(table["p_tost"])
    p, q = (table["p_adj"], table["p_tost_adj"]) if fdr else (table["p"], table["p_tost"])
    table["statement"] = [
        UNDECIDED if n < min_seeds else NO_CHANGE if tq < alpha else
        (FLATTER if m < 0 else SHARPER) if tp < alpha else UNDECIDED
        for n, tp, tq, m in zip(table["n_seeds"], p, q, table["mean"])]
    return table
