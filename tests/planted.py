"""Planted-effect grids at the default run's own scale: the positive controls of weightscape.answer.

tests/data/default_run/effects.csv holds, per lens, condition and metric, the default run's across-seed mean
paired effect and its (moderated) seed SD (tests/data/default_run/extract.py regenerates it). A planted grid takes
those as the TRUE effects and noise: every regularizer level as measured, plus probes built from them (a copy of a
level, the baseline plus noise, a mix), and draws any number of seeds:

    finetuned(c, s) = pretrained + fine-tuning's own change + a(s) + mu(c) + e(c, s),   baseline: mu = 0
    a(s): the seed's shared part (head init, data order: cancels in the paired effect)
    e(c, s) ~ N(0, own(c)^2), own(c)^2 = sd(c)^2 - own(baseline)^2, own(baseline) = prior_sd / sqrt 2

so the paired effect E(c, s) = mu(c) + e(c, s) - e(baseline, s) has the measured SD, and two conditions of one seed
share the baseline's draw as in the pipeline. The layers table (one layer, "network") goes through the real
stats.layer_deltas, so the answer reads what the pipeline gives it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from weightscape import stats as S
from weightscape.answer import answer

FIXTURE = Path(__file__).resolve().parent / "data" / "default_run" / "effects.csv"
REGULARIZERS = ("dropout", "weight_decay")


def fixture(lens: str = "W") -> pd.DataFrame:
    table = pd.read_csv(FIXTURE)
    return table[table["lens"] == lens]


def measured(lens: str = "W") -> dict:
    """{condition: (family, level, mean (N,), sd (N,))} of every condition of the default run, metrics in
    `metrics(lens)` order."""
    table = fixture(lens)
    order = metrics(lens)
    out = {}
    for c, part in table.groupby("condition", sort=False):
        part = part.set_index("metric").reindex(order)
        out[c] = (part["family"].iat[0], float(part["level"].iat[0]), part["mean"].to_numpy(float),
                  part["sd"].to_numpy(float))
    return out


def metrics(lens: str = "W") -> list[str]:
    return list(dict.fromkeys(fixture(lens)["metric"]))


def regularizer_plan(lens: str = "W") -> dict:
    """The measured regularizer levels (and the baseline, implicit)."""
    return {c: v for c, v in measured(lens).items() if v[0] in REGULARIZERS}


def copies(lens: str = "W", of=None) -> dict:
    """A data condition equal to each regularizer level (`of`: names; default all), named copy:<level name>."""
    plan = regularizer_plan(lens)
    return {f"copy:{c}": ("diversity", np.nan, mu, sd) for c, (_, _, mu, sd) in plan.items()
            if of is None or c in of}


def baseline_copy(lens: str = "W") -> dict:
    """The baseline plus a run's own noise: mu = 0, the typical paired SD."""
    prior = fixture(lens).drop_duplicates("metric").set_index("metric")["prior_sd"].reindex(metrics(lens))
    return {"copy:baseline": ("diversity", np.nan, np.zeros(len(prior)), prior.to_numpy(float))}


def make_layers(plan: dict, n_seeds: int, lens: str = "W", rng_seed: int = 0) -> pd.DataFrame:
    """The layers table of `plan` ({condition: (family, level, mu, sd)}; the baseline is added) for n_seeds."""
    rng = np.random.default_rng(rng_seed)
    names = metrics(lens)
    info = fixture(lens).drop_duplicates("metric").set_index("metric").reindex(names)
    prior, value = info["prior_sd"].to_numpy(float), info["baseline_value"].to_numpy(float)
    own_base = prior / np.sqrt(2)
    pretrained = value - 0.01 * np.abs(value)
    rows = []

    def add(seed, condition, family, stage, values):
        rows.append(dict(dataset="d", model="m", condition=condition, seed=seed, family=family, stage=stage,
                         longname="network", layer_type="dense", status="success", **dict(zip(names, values))))

    for seed in range(n_seeds):
        shared = 0.5 * prior * rng.normal(size=len(names))
        base = value + shared + own_base * rng.normal(size=len(names))
        add(seed, "pretrained", "pretrained", "pretrained", pretrained)
        add(seed, "baseline", "baseline", "finetuned", base)
        for name, (family, _, mu, sd) in plan.items():
            own = np.sqrt(np.maximum(sd ** 2 - own_base ** 2, (sd / 2) ** 2))
            add(seed, name, family, "finetuned", value + shared + mu + own * rng.normal(size=len(names)))
    return pd.DataFrame(rows)


def make_runs(plan: dict, n_seeds: int) -> pd.DataFrame:
    rows = [dict(dataset="d", model="m", condition="baseline", family="baseline", level=0.0, seed=s)
            for s in range(n_seeds)]
    rows += [dict(dataset="d", model="m", condition=c, family=f, level=lv, seed=s)
             for c, (f, lv, _, _) in plan.items() for s in range(n_seeds)]
    return pd.DataFrame(rows)


def run(plan: dict, n_seeds: int, lens: str = "W", rng_seed: int = 0, config: dict | None = None) -> dict:
    """The answer's tables of one planted draw."""
    deltas = S.layer_deltas(make_layers(plan, n_seeds, lens, rng_seed))
    return answer(deltas, make_runs(plan, n_seeds), config=config)
