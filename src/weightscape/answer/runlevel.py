"""Run-level outcomes through the same machinery as the spectral metrics: the loss curvature of each run (runs.csv
`hessian_trace`, `hessian_top_eig`, and the pretrained reference's `*_pretrained`; curvature.enabled).

Curvature is multiplicative (a flatter minimum halves it, a sharper one doubles it), so the change of a run is
taken on a log10 scale: Delta = log10(run) - log10(its pretrained reference), and the relative effect R = Delta -
the same seed's baseline Delta. Each outcome becomes a one-layer, one-metric `seeds.Cube`, so everything below is
the spectral code unchanged: the noise floor (`stats.noise_floor`), the equivalence margin
(`stats.equivalence_margin`, a rule named after the outcome, else `default`), the across-seed effects with t-test
and TOST, the family effects, and each data condition's equivalent dropout p / weight-decay lambda on the
regularizers' dose-response (`dose.placements`, bootstrap over seeds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from weightscape.names import BASELINE, CURVATURE_OUTCOMES

from . import dose, seeds, verdict
from .seeds import SCOPE

FLATTER, SHARPER, NO_CHANGE, UNDECIDED = ("flatter than baseline", "sharper than baseline",
                                          "no measurable change (equivalent within the margin)", "inconclusive")
LAYER = "whole network"  # the one "layer" of a run-level outcome


def _log10(values: pd.Series) -> pd.Series:
    """log10, NaN for a non-positive value (left out; the n_seeds of its rows shows it)."""
    return np.log10(values.where(values > 0))


def curvature_deltas(runs: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """A `stats.layer_deltas`-shaped table of one curvature outcome: one row per run (layer `LAYER`) with
    delta = log10 change from pretrained and relative = delta minus the same dataset/model/seed's baseline delta.
    A non-positive value (the Hutchinson trace can be, away from a minimum) has no log and counts as missing."""
    r = runs[["dataset", "model", "condition", "family", "seed", outcome, f"{outcome}_pretrained"]].copy()
    r["delta"] = _log10(r[outcome]) - _log10(r[f"{outcome}_pretrained"])
    base = r[r["family"] == BASELINE].set_index(["dataset", "model", "seed"])["delta"]
    r["relative"] = r["delta"] - base.reindex(pd.MultiIndex.from_frame(r[["dataset", "model", "seed"]])).to_numpy()
    return r.assign(longname=LAYER, metric=outcome)[["dataset", "model", "condition", "family", "seed", "longname",
                                                    "metric", "relative", "delta"]]


def _statements(table: pd.DataFrame, alpha: float, fdr: bool, min_seeds: int) -> list[str]:
    p, q = (table["p_adj"], table["p_tost_adj"]) if fdr else (table["p"], table["p_tost"])
    return [UNDECIDED if n < min_seeds else NO_CHANGE if tq < alpha else
            (FLATTER if m < 0 else SHARPER) if tp < alpha else UNDECIDED
            for n, tp, tq, m in zip(table["n_seeds"], p, q, table["mean"])]


def _family_rows(cube: seeds.Cube, noise: pd.DataFrame, margin: float, alpha: float) -> pd.DataFrame:
    """seeds.family_effects plus the family's equivalence test (TOST on its per-seed means)."""
    fam = seeds.family_effects(cube, noise)
    per = cube.seed_means("relative")[..., 0]  # (C, S)
    tests = [seeds.tost(seeds.nanmean(per[[cube.index(c) for c in cube.of_family(f)]], axis=0), margin, alpha)
             for f in fam["family"]]
    return fam.assign(margin=margin, **{k: [t[k] for t in tests] for k in ("ci90_low", "ci90_high", "p_tost")},
                      p_tost_adj=lambda d: seeds.bh(d["p_tost"]))


def curvature_effects(runs: pd.DataFrame, margin_spec, alpha: float = 0.05, fdr: bool = True, min_seeds: int = 3,
                      noise_source: str = "pooled", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per curvature outcome and non-baseline condition or family (`level` = condition | family).

    Columns: scope, outcome, level, name, family, n_seeds, mean, sd, ci_low, ci_high, t, p, p_adj, noise_sd,
    effect_in_noise, margin, ci90_low, ci90_high, p_tost, p_tost_adj, statement (flatter / sharper than baseline,
    no measurable change, inconclusive: on the adjusted p-values when `fdr`, "inconclusive" below min_seeds), and
    for each data condition per regularizer R present: R_level, R_level_ci_low, R_level_ci_high, R_position (the
    equivalent strength, as in placement.csv) and R_measurable (whether any level of R moves the outcome
    measurably, as in regularizers.csv: only then does the equivalent strength mean anything). Empty when runs.csv
    has no curvature columns.
    """
    spec = margin_spec if isinstance(margin_spec, dict) else {"default": margin_spec}
    levels = dose.condition_levels(runs)
    tables = []
    for outcome in [o for o in CURVATURE_OUTCOMES if o in runs and f"{o}_pretrained" in runs]:
        cube = seeds.build_cube(curvature_deltas(runs, outcome), [outcome])
        noise = seeds.noise_floor(cube, noise_source)
        rule = {k: v for k, v in spec.items() if k in ("default", outcome)}
        margin = seeds.margins(rule, cube, noise)
        effects = seeds.effects(cube, noise, margin, alpha=alpha, fdr=fdr)
        conditions = effects.rename(columns={"condition": "name"}).assign(level="condition")
        families = _family_rows(cube, noise, float(margin["margin"].iat[0]), alpha)
        families = families.assign(name=families["family"], level="family")
        table = pd.concat([conditions, families], ignore_index=True).assign(outcome=outcome)
        targets = [c for c in cube.conditions if cube.family[c] in seeds.PLACED_FAMILIES]
        regularizers = dose.regularizer_families(cube, levels)
        placement, _ = dose.placements(cube, regularizers, dose.match_scale(cube, noise), targets, n_boot=n_boot,
                                       seed=seed)
        # a placement means something only on a curve that moves: as in the verdict, per regularizer
        moves = verdict.regularizer_effects(effects, regularizers, [outcome], min_seeds=min_seeds)
        for regularizer, part in placement.groupby("regularizer", sort=False):
            part = part.set_index("condition")
            on = table["name"].where(table["level"] == "condition")
            for column in ("level", "level_ci_low", "level_ci_high", "position"):
                table[f"{regularizer}_{column}"] = on.map(part[column])
            table[f"{regularizer}_measurable"] = bool(moves.set_index("family").at[regularizer, "measurable"])
        tables.append(table)
    if not tables:
        return pd.DataFrame()
    table = pd.concat(tables, ignore_index=True)
    table["statement"] = _statements(table, alpha, fdr, min_seeds)
    first = ["scope", "outcome", "level", "name", "family", "n_seeds", "mean", "sd", "ci_low", "ci_high", "t", "p",
             "p_adj", "noise_sd", "effect_in_noise", "margin", "ci90_low", "ci90_high", "p_tost", "p_tost_adj",
             "statement"]
    placed = [c for c in table.columns if c not in first
              and c.endswith(("_level", "_ci_low", "_ci_high", "_position", "_measurable"))]
    return table[first + placed].assign(scope=SCOPE)
