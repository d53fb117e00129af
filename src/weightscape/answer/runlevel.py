"""Run-level outcomes through the same machinery as the spectral metrics: the loss curvature of each run (runs.csv
`hessian_trace`, `hessian_top_eig`, and the pretrained reference's `*_pretrained`; curvature.enabled).

Curvature is multiplicative (a flatter minimum halves it, a sharper one doubles it), so the change of a run is
taken on a log10 scale: Delta = log10(run) - log10(its pretrained reference), and the relative effect R = Delta -
the same seed's baseline Delta. Each outcome becomes a one-layer, one-metric `seeds.Cube`, so everything below is
the spectral code unchanged: the paired noise, the equivalence margin (`stats.equivalence_margin`, a rule named
after the outcome, else `default`; baseline_change is then the baseline's mean |log10 change|), the across-seed
effects with t-test and TOST, the family effects, and each data condition's equivalent dropout p / weight-decay
lambda on the regularizers' dose-response (`dose.placements`, seed-level test inversion).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from weightscape.names import BASELINE, CURVATURE_OUTCOMES, REGULARIZERS

from . import dose, inference, seeds, verdict
from .seeds import SCOPE

FLATTER, SHARPER, UNDECIDED = "flatter than baseline", "sharper than baseline", "inconclusive"
SMALL, NO_CHANGE = "detected, within the margin", "no measurable change"
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


def _statement(n: int, state: str, mean: float, min_seeds: int) -> str:
    """The sentence word of one row from its seeds.state."""
    if n < min_seeds:
        return UNDECIDED
    if state in (seeds.BEYOND_MARGIN, seeds.DETECTED):
        return FLATTER if mean < 0 else SHARPER
    return {seeds.DETECTED_SMALL: SMALL, seeds.WITHIN_MARGIN: NO_CHANGE}.get(state, UNDECIDED)


def _family_rows(cube: seeds.Cube, margin: float, alpha: float, fdr: bool) -> pd.DataFrame:
    """seeds.family_effects plus the family's equivalence test (TOST on its per-seed means) and its state."""
    fam = seeds.family_effects(cube)
    per = cube.seed_means("relative")[..., 0]  # (C, S)
    samples = [seeds.nanmean(per[[cube.index(c) for c in cube.of_family(f)]], axis=0) for f in fam["family"]]
    fam["p_tost"] = [inference.tost(x, margin, alpha)["p_tost"] for x in samples]
    if not fdr:
        fam["p_adj"] = fam["p"]
    fam["p_tost_adj"] = inference.bh(fam["p_tost"]) if fdr else fam["p_tost"]
    fam["ci_level"] = inference.selection_level(fam["p"], alpha, fdr)
    fam["ci90_level"] = inference.selection_level(fam["p_tost"], alpha, fdr, two_sided=False)
    for name, level in (("ci", "ci_level"), ("ci90", "ci90_level")):
        bounds = [inference.interval(x, fam[level].iat[0]) for x in samples]
        fam[f"{name}_low"], fam[f"{name}_high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    fam["margin"], fam["detected"], fam["equivalent"] = margin, fam["p_adj"] < alpha, fam["p_tost_adj"] < alpha
    fam["beyond_margin"] = fam["detected"] & ((fam["ci_low"] > margin) | (fam["ci_high"] < -margin))
    fam["state"] = [seeds.state(d, e, b) for d, e, b in zip(fam["detected"], fam["equivalent"],
                                                            fam["beyond_margin"])]
    return fam


def curvature_effects(runs: pd.DataFrame, margin_spec, alpha: float = 0.05, fdr: bool = True,
                      min_seeds: int = 3) -> pd.DataFrame:
    """One row per curvature outcome and non-baseline condition or family (`level` = condition | family).

    Columns: scope, outcome, level, name, family, n_seeds, mean, sd, d_z, ci_low, ci_high, ci_level, t, p, p_adj,
    margin, ci90_low, ci90_high, ci90_level, p_tost, p_tost_adj, state, statement (flatter / sharper than
    baseline, detected within the margin, no measurable change, inconclusive: "inconclusive" below min_seeds), and
    for each data condition per regularizer R present: R_text, R_level, R_level_ci_low, R_level_ci_high,
    R_position (the equivalent strength, as in placement.csv: nothing is placed on a regularizer that does not
    move the outcome) and R_moves (whether any level of R moves the outcome, as in regularizers.csv). Empty when
    runs.csv has no curvature columns.
    """
    spec = margin_spec if isinstance(margin_spec, dict) and not set(margin_spec) <= set(seeds.MARGIN_RULES) else {
        "default": margin_spec}
    levels = dose.condition_levels(runs)
    tables = []
    for outcome in [o for o in CURVATURE_OUTCOMES if o in runs and f"{o}_pretrained" in runs]:
        cube = seeds.build_cube(curvature_deltas(runs, outcome), [outcome])
        noise = seeds.noise_table(cube)
        margin = seeds.margins({k: v for k, v in spec.items() if k in ("default", outcome)}, noise)
        prior = seeds.priors(cube)
        effects = seeds.effects(cube, margin, alpha=alpha, fdr=fdr, prior=prior)
        conditions = effects.rename(columns={"condition": "name"}).assign(level="condition")
        families = _family_rows(cube, float(margin["margin"].iat[0]), alpha, fdr)
        families = families.assign(name=families["family"], level="family")
        table = pd.concat([conditions, families], ignore_index=True).assign(outcome=outcome)
        targets = [c for c in cube.conditions if cube.family[c] in seeds.PLACED_FAMILIES]
        regularizers = dose.regularizer_families(cube, levels)
        moves = verdict.regularizer_moves(effects, regularizers, [outcome], min_seeds=min_seeds)
        placement = dose.placements(cube, regularizers, moves, effects, noise.set_index("metric")["noise_sd"],
                                    targets, prior, alpha=alpha)
        for regularizer, part in placement.groupby("regularizer", sort=False):
            part = part.set_index("condition")
            on = table["name"].where(table["level"] == "condition")
            for column in ("text", "level", "level_ci_low", "level_ci_high", "position"):
                table[f"{regularizer}_{column}"] = on.map(part[column])
            table[f"{regularizer}_moves"] = bool(moves.set_index("family").at[regularizer, "moves"])
        tables.append(table)
    if not tables:
        return pd.DataFrame()
    table = pd.concat(tables, ignore_index=True)
    table["statement"] = [_statement(n, st, m, min_seeds) for n, st, m in zip(table["n_seeds"], table["state"],
                                                                              table["mean"])]
    first = ["scope", "outcome", "level", "name", "family", "n_seeds", "mean", "sd", "d_z", "ci_low", "ci_high",
             "ci_level", "t", "p", "p_adj", "margin", "ci90_low", "ci90_high", "ci90_level", "p_tost", "p_tost_adj",
             "state", "statement"]
    placed = [f"{r}_{c}" for r in REGULARIZERS for c in ("text", "level", "level_ci_low", "level_ci_high", "position",
                                                         "moves") if f"{r}_{c}" in table.columns]
    return table[first + placed].assign(scope=SCOPE)
