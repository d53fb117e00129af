"""The answer that stands: across-seed statistics on `stats.layer_deltas` output, runs.csv and diversity.csv.

    seeds.py    per-seed paired effects, their noise, t-tests and TOST across seeds, margins, BH adjustment
    dose.py     regularizer dose-response curves and each data condition's equivalent strength (test inversion)
    verdict.py  which metrics each regularizer moves; THE verdict rule (`decide`, five states)
    claims.py   paper claim 1 (diversity vs dropout-likeness), claim 2 (synthetic data: diversity, OOD),
                additivity of combined (data + regularizer) conditions
    runlevel.py the loss curvature of each run (runs.csv, curvature.enabled) through the same machinery
    overview.py the summary's one table (verdict, equivalent strengths, outcomes per condition)

    answer(deltas, runs, diversity=None, combined=None, config=None) -> dict of DataFrames

Every statistic here is ACROSS SEEDS (the seed is the unit of replication); the paper's across-layer tests stay
in `weightscape.stats`. Every table carries n_seeds; with fewer than `min_seeds` seeds every verdict and
statement is "inconclusive" with that reason, and every function still returns.
"""

from __future__ import annotations

import pandas as pd

from weightscape.names import COMBINED

from . import claims, dose, overview, runlevel, seeds, verdict
from .seeds import PLACED_FAMILIES
from .verdict import RULE

__all__ = ["RULE", "SENSITIVITY", "TABLES", "answer", "read_table", "settings", "write_answer"]

#: the tables of `answer`, each written as results/answer/<name>.csv
TABLES = ("overview", "verdicts", "sensitivity", "claims", "effects", "family_effects", "noise", "regularizers",
          "curves", "placement", "claim1", "claim2", "additivity", "curvature")
#: the margin multiples of the sensitivity table (1 is the verdict itself)
SENSITIVITY = (0.5, 1.0, 2.0)


def settings(stats: dict | None = None) -> dict:
    """The `stats` config section with the schema's defaults filled in (the schema, src/weightscape/config/
    schema.yaml, documents every key); a bad value is a one-line weightscape.config.ConfigError."""
    from weightscape.config import section_with_defaults

    return section_with_defaults("stats", stats)


def judge(cube: seeds.Cube, families: dict, margin: pd.DataFrame, noise: pd.DataFrame, cfg: dict) -> dict:
    """Effects, what each regularizer moves, placements and verdicts at one set of margins."""
    alpha, min_seeds = cfg["alpha"], cfg["min_seeds"]
    prior = seeds.priors(cube)
    eff = seeds.effects(cube, margin, alpha=alpha, fdr=cfg["fdr"], prior=prior)
    moves = verdict.regularizer_moves(eff, families, cube.metrics, min_seeds=min_seeds)
    targets = [c for c in cube.conditions if cube.family[c] in PLACED_FAMILIES]
    placement = dose.placements(cube, families, moves, eff, noise.set_index("metric")["noise_sd"], targets, prior,
                                alpha=alpha)
    data_conditions = [c for c in targets if cube.family[c] != COMBINED]
    table = verdict.verdicts(eff, placement, families, data_conditions, min_seeds=min_seeds)
    return dict(effects=eff, regularizers=moves, placement=placement, verdicts=table)


def answer(deltas: pd.DataFrame, runs: pd.DataFrame, diversity: pd.DataFrame | None = None,
           combined: dict | None = None, config: dict | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the answer (TABLES). `deltas` = stats.layer_deltas(layers); `runs` = runs.csv (levels,
    outcomes); `diversity` = diversity.csv (optionally one row per seed); `combined` = {combined condition: (data
    condition, regularizer condition)}; `config` = the `stats` config section (see `settings`).

    The sensitivity table repeats the verdicts with every margin at SENSITIVITY times its value.
    """
    cfg = settings(config)
    alpha, min_seeds = cfg["alpha"], cfg["min_seeds"]
    cube = seeds.build_cube(deltas, cfg["metrics"])
    noise = seeds.noise_table(cube)
    families = dose.regularizer_families(cube, dose.condition_levels(runs))
    judged = {k: judge(cube, families, seeds.margins(cfg["equivalence_margin"], noise, scale=k), noise, cfg)
              for k in SENSITIVITY}
    main = judged[1.0]
    margin = seeds.margins(cfg["equivalence_margin"], noise)
    c1, c2 = cfg["claim1"], cfg["claim2"]
    claim1, s1 = claims.diversity_claim(main["effects"], main["placement"], diversity, c1["families"], cube,
                                        noise, score=c1["score"], alpha=alpha, min_seeds=min_seeds,
                                        min_conditions=c1["min_conditions"])
    synthetic = [c for c in cube.conditions if cube.family[c] in c2["families"]]
    claim2, s2 = claims.synthetic_claim(runs, diversity, synthetic, score=c2["score"], outcomes=c2["outcomes"],
                                        alpha=alpha, min_seeds=min_seeds)
    add = claims.additivity(cube, {k: tuple(v) for k, v in (combined or {}).items()}, margin, alpha=alpha,
                            fdr=cfg["fdr"], min_seeds=min_seeds)
    curvature = runlevel.curvature_effects(runs, cfg["equivalence_margin"], alpha=alpha, fdr=cfg["fdr"],
                                           min_seeds=min_seeds)
    return {"overview": overview.overview(main["verdicts"], runs), **main,
            "sensitivity": overview.sensitivity({k: j["verdicts"] for k, j in judged.items()}),
            "claims": pd.DataFrame([s1, s2]), "noise": noise.merge(margin, on="metric"),
            "family_effects": seeds.family_effects(cube),
            "curves": dose.dose_curves(main["effects"], families, cube.metrics, main["regularizers"]),
            "claim1": claim1, "claim2": claim2, "additivity": add, "curvature": curvature}


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
