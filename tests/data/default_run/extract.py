"""Regenerate effects.csv: the default run's across-seed effect and seed noise of every condition, per lens and
metric - the scale the planted-effect tests (tests/planted.py) reproduce. Run from the repo root after `make run`:
    .venv/bin/python tests/data/default_run/extract.py results > tests/data/default_run/effects.csv

Per (lens, condition, metric): mean = the across-seed mean paired effect, sd = its moderated paired SD (the
moderated t's variance, weightscape.answer.seeds), and per metric the prior SD (the typical paired SD), so a planted
run's own noise and the baseline's shared noise can be drawn at the run's own size.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from weightscape.answer import dose, seeds, settings
from weightscape.lenses import eligible, lens_deltas

results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
cfg = settings()
levels = dose.condition_levels(pd.read_csv(results / "summary" / "runs.csv"))
rows = []
deltas, _ = eligible(lens_deltas(pd.read_parquet(results / "summary" / "layers.parquet")), cfg["min_evals"])
for lens, part in deltas.groupby("lens", sort=False):
    cube = seeds.build_cube(part, cfg["metrics"])
    noise = seeds.noise_table(cube)
    effects = seeds.effects(cube, seeds.margins(cfg["equivalence_margin"], noise))
    info = noise.set_index("metric")
    for _, r in effects.iterrows():
        rows.append(dict(lens=lens, condition=r["condition"], family=r["family"],
                         level=levels.get(r["condition"], np.nan), metric=r["metric"], mean=r["mean"],
                         sd=r["se"] * np.sqrt(r["n_seeds"]), prior_sd=info.at[r["metric"], "prior_sd"],
                         baseline_value=info.at[r["metric"], "baseline_value"]))
pd.DataFrame(rows).to_csv(sys.stdout, index=False, float_format="%.6g")
