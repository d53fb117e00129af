"""The answer that stands: across-seed statistics on the per-layer lens table (weightscape.lenses: W and Delta W),
runs.csv and diversity.csv.

    inference.py seed-level tests and intervals (plain and moderated t, TOST, BH and its intervals)
    seeds.py     per-seed paired effects, their noise and margins, the effects table
    dose.py      regularizer dose-response curves and each data condition's equivalent strength (test inversion)
    verdict.py   which metrics each regularizer moves; THE verdict rule (`decide`, five states)
    claims.py    paper claim 1 (diversity vs dropout-likeness), claim 2 (synthetic data), additivity
    where.py     the same on each layer group (position in the network, kind of layer)
    outcomes.py  training fit, the fit confound, spectral metrics as predictors of accuracy / OOD / ECE
    power.py     what the current seeds can detect, and how many would decide an undecided verdict
    runlevel.py  the loss curvature of each run (runs.csv, curvature.enabled) through the same machinery
    overview.py  the summary's one table, across both lenses; the margin-sensitivity table

    answer(deltas, runs, diversity=None, combined=None, config=None) -> dict of DataFrames (TABLES)

Every statistic here is ACROSS SEEDS (the seed is the unit of replication); the paper's across-layer tests stay
in `weightscape.stats`. Every table carries n_seeds, and a `lens` column where it is computed per lens; with fewer
than `min_seeds` seeds every verdict and statement is "inconclusive" with that reason, and every function still
returns.
"""

from __future__ import annotations

import pandas as pd

from weightscape.lenses import LENSES, W, eligible, inert_layers, layer_groups
from weightscape.names import COMBINED

from . import claims, dose, outcomes, overview, power, runlevel, seeds, verdict, where
from .seeds import PLACED_FAMILIES
from .verdict import RULE

__all__ = ["RULE", "SENSITIVITY", "TABLES", "answer", "judge", "read_table", "settings", "write_answer"]

#: the tables of `answer`, each written as results/answer/<name>.csv
TABLES = ("overview", "verdicts", "sensitivity", "claims", "effects", "family_effects", "noise", "regularizers",
          "curves", "placement", "claim1", "claim2", "additivity", "groups", "excluded", "inert_scale",
          "training_fit", "confound", "predictors", "power", "curvature")
#: the tables computed once per lens (a `lens` column in second place)
PER_LENS = ("verdicts", "sensitivity", "effects", "family_effects", "noise", "regularizers", "curves", "placement",
            "claim1", "additivity", "groups", "confound", "predictors", "power")
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


def lens_answer(cube: seeds.Cube, groups: pd.DataFrame, runs: pd.DataFrame, diversity, combined: dict,
                fit: pd.DataFrame, cfg: dict) -> dict:
    """Every per-lens table (PER_LENS, plus claim1_statement) of one lens's cube."""
    alpha = cfg["alpha"]
    noise = seeds.noise_table(cube)
    families = dose.regularizer_families(cube, dose.condition_levels(runs))
    judged = {k: judge(cube, families, seeds.margins(cfg["equivalence_margin"], noise, scale=k), noise, cfg)
              for k in SENSITIVITY}
    main = judged[1.0]
    margin = seeds.margins(cfg["equivalence_margin"], noise)
    c1 = cfg["claim1"]
    claim1, s1 = claims.diversity_claim(main["effects"], main["placement"], diversity, c1["families"], cube, noise,
                                        score=c1["score"], alpha=alpha, min_seeds=cfg["min_seeds"],
                                        min_conditions=c1["min_conditions"])
    data = main["effects"][main["effects"]["family"] != COMBINED]
    return {**main, "sensitivity": overview.sensitivity({k: j["verdicts"] for k, j in judged.items()}),
            "noise": noise.merge(margin, on="metric"), "family_effects": seeds.family_effects(cube),
            "curves": dose.dose_curves(main["effects"], families, cube.metrics, main["regularizers"]),
            "claim1": claim1, "claim1_statement": s1,
            "additivity": claims.additivity(cube, combined, margin, alpha=alpha, fdr=cfg["fdr"],
                                            min_seeds=cfg["min_seeds"]),
            "groups": where.group_effects(cube, groups, judge, families, cfg),
            "confound": outcomes.confound(data, fit), "predictors": outcomes.predictors(data, runs),
            "power": power.power_table(main["effects"], main["verdicts"], alpha=alpha)}


def answer(deltas: pd.DataFrame, runs: pd.DataFrame, diversity: pd.DataFrame | None = None,
           combined: dict | None = None, config: dict | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the answer (TABLES). `deltas` = weightscape.lenses.lens_deltas(layers) (a table without a
    `lens` column, e.g. stats.layer_deltas(layers), is the W lens alone); `runs` = runs.csv (levels, outcomes);
    `diversity` = diversity.csv (optionally one row per seed); `combined` = {combined condition: (data
    condition, regularizer condition)}; `config` = the `stats` config section (see `settings`).
    """
    cfg = settings(config)
    deltas, excluded = eligible(deltas if "lens" in deltas.columns else deltas.assign(lens=W), cfg["min_evals"])
    groups = layer_groups(deltas)
    combined = {k: tuple(v) for k, v in (combined or {}).items()}
    fit = outcomes.training_fit(runs)
    per_lens = {}
    for lens in [x for x in LENSES if x in set(deltas["lens"])]:
        cube = seeds.build_cube(deltas[deltas["lens"] == lens], cfg["metrics"])
        per_lens[lens] = lens_answer(cube, groups, runs, diversity, combined, fit, cfg)
    tables = {name: _stack({lens: t[name] for lens, t in per_lens.items()}) for name in PER_LENS}
    c2 = cfg["claim2"]
    synthetic = sorted({c for c, f in zip(runs["condition"], runs["family"]) if f in c2["families"]},
                       key=list(runs["condition"]).index)
    claim2, s2 = claims.synthetic_claim(runs, diversity, synthetic, score=c2["score"], outcomes=c2["outcomes"],
                                        alpha=cfg["alpha"], min_seeds=cfg["min_seeds"])
    statements = [dict(t["claim1_statement"], lens=lens) for lens, t in per_lens.items()] + [dict(s2, lens="")]
    verdicts = {lens: t["verdicts"] for lens, t in per_lens.items()}
    return {**tables, "overview": overview.overview(verdicts, runs), "claims": pd.DataFrame(statements),
            "claim2": claim2, "excluded": excluded, "inert_scale": inert_layers(deltas), "training_fit": fit,
            "curvature": runlevel.curvature_effects(runs, cfg["equivalence_margin"], alpha=cfg["alpha"],
                                                    fdr=cfg["fdr"], min_seeds=cfg["min_seeds"])}


def _stack(by_lens: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The lenses' tables one below the other, with a `lens` column after `scope` (or first)."""
    parts = []
    for lens, table in by_lens.items():
        table = table.copy()
        table.insert(1 if "scope" in table.columns else 0, "lens", lens)
        parts.append(table)
    parts = [p for p in parts if len(p)] or parts[:1]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


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
