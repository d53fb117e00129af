"""The answer that stands: across-seed statistics on `stats.layer_deltas` output, runs.csv and diversity.csv.

    seeds.py    per-seed effects, noise floor, t-tests and TOST across seeds, margins, BH adjustment
    dose.py     regularizer dose-response curves (monotone fits) and each data condition's equivalent strength
    verdict.py  which regularizer families move which metrics measurably; THE verdict rule (`decide`)
    claims.py   paper claim 1 (diversity vs dropout-likeness), claim 2 (synthetic data: diversity, OOD),
                additivity of combined (data + regularizer) conditions
    runlevel.py the loss curvature of each run (runs.csv, curvature.enabled) through the same machinery:
                effects, equivalence, equivalent dropout p / weight-decay lambda

    answer(deltas, runs, diversity=None, combined=None, config=None) -> dict of DataFrames

Every statistic here is ACROSS SEEDS (the seed is the unit of replication); the paper's across-layer tests stay
in `weightscape.stats`. Every table carries n_seeds; with fewer than `min_seeds` seeds every verdict and
statement is "inconclusive" with that reason, and every function still returns.
"""

from __future__ import annotations


import pandas as pd

from weightscape.names import COMBINED

from . import claims, dose, runlevel, seeds, verdict
from .seeds import PLACED_FAMILIES
from .verdict import VERDICT_RULE

__all__ = ["TABLES", "VERDICT_RULE", "answer", "read_table", "settings", "write_answer"]

#: the tables of `answer`, each written as results/answer/<name>.csv
TABLES = ("verdicts", "claims", "effects", "family_effects", "noise", "regularizers", "curves", "placement",
          "comparison", "claim1", "claim2", "additivity", "curvature")


def settings(stats: dict | None = None) -> dict:
    """The `stats` config section with the schema's defaults filled in (the schema, src/weightscape/config/
    schema.yaml, documents every key); a bad value is a one-line weightscape.config.ConfigError."""
    from weightscape.config import section_with_defaults

    return section_with_defaults("stats", stats)


def answer(deltas: pd.DataFrame, runs: pd.DataFrame, diversity: pd.DataFrame | None = None,
           combined: dict | None = None, config: dict | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the answer. `deltas` = stats.layer_deltas(layers); `runs` = runs.csv (levels, outcomes);
    `diversity` = diversity.csv (optionally one row per seed); `combined` = {combined condition: (data
    condition, regularizer condition)}; `config` = the `stats` config section (see `settings`): metrics, alpha,
    min_seeds, fdr, noise_floor, equivalence_margin (seeds.margins), n_boot and seed, claim1, claim2.

    Returns: noise, effects, family_effects, regularizers, curves, placement, comparison, verdicts, claims
    (one row per paper claim: claim, statement, reason, n_seeds, n_conditions), claim1, claim2, additivity.
    """
    cfg = settings(config)
    alpha, min_seeds, n_boot, seed = cfg["alpha"], cfg["min_seeds"], cfg["n_boot"], cfg["seed"]
    cube = seeds.build_cube(deltas, cfg["metrics"])
    noise = seeds.noise_floor(cube, cfg["noise_floor"])
    margin = seeds.margins(cfg["equivalence_margin"], cube, noise)
    eff = seeds.effects(cube, noise, margin, alpha=alpha, fdr=cfg["fdr"])
    scale = dose.match_scale(cube, noise)
    noise = noise.merge(margin, on="metric").merge(scale, on="metric")
    families = dose.regularizer_families(cube, dose.condition_levels(runs))
    targets = [c for c in cube.conditions if cube.family[c] in PLACED_FAMILIES]
    placement, comparison = dose.placements(cube, families, scale, targets, n_boot=n_boot, seed=seed)
    regs = verdict.regularizer_effects(eff, families, cube.metrics, min_seeds=min_seeds)
    data_conditions = [c for c in targets if cube.family[c] != COMBINED]
    table = verdict.verdicts(eff, regs, placement, comparison, data_conditions, cube.metrics, min_seeds=min_seeds)
    c1 = cfg["claim1"]
    claim1, s1 = (claims.diversity_claim(eff, placement, diversity, c1["families"], cube.metrics, score=c1["score"],
                                         alpha=alpha, min_seeds=min_seeds, min_conditions=c1["min_conditions"],
                                         seed=seed)
                  if diversity is not None else
                  (pd.DataFrame(), dict(claim="more diversity, more dropout-like", statement=claims.INCONCLUSIVE,
                                        reason="no diversity table", n_seeds=0, n_conditions=0)))
    c2 = cfg["claim2"]
    synthetic = [c for c in cube.conditions if cube.family[c] in c2["families"]]
    claim2, s2 = claims.synthetic_claim(runs, diversity, synthetic, score=c2["score"], outcomes=c2["outcomes"],
                                        alpha=alpha, min_seeds=min_seeds)
    add = claims.additivity(cube, {k: tuple(v) for k, v in (combined or {}).items()}, margin, alpha=alpha,
                            fdr=cfg["fdr"],
                            min_seeds=min_seeds)
    return {"noise": noise, "effects": eff, "family_effects": seeds.family_effects(cube, noise),
            "regularizers": regs, "curves": dose.dose_curves(eff, families, cube.metrics), "placement": placement,
            "comparison": comparison, "verdicts": table, "claims": pd.DataFrame([s1, s2]), "claim1": claim1,
            "claim2": claim2, "additivity": add,
            "curvature": runlevel.curvature_effects(runs, cfg["equivalence_margin"], alpha=alpha, fdr=cfg["fdr"],
                                                    min_seeds=min_seeds, noise_source=cfg["noise_floor"],
                                                    n_boot=n_boot, seed=seed)}


def write_answer(tables: dict[str, pd.DataFrame], out_dir) -> None:
    """Write every table of `answer` as <out_dir>/<name>.csv, atomically (an empty table: header only)."""
    from pathlib import Path

    from weightscape.io import write_csv

    for name in TABLES:
        write_csv(Path(out_dir) / f"{name}.csv", tables[name])


def read_table(path) -> pd.DataFrame:
    """One table written by `write_answer` (a table with no columns reads back as an empty DataFrame)."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
