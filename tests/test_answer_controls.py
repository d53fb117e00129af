"""Positive controls of the across-seed verdict at the default run's own scale (tests/planted.py), on both lenses
(W and the update Delta W): every measured regularizer level, a copy of each level as a data condition, and the
baseline plus noise, with the default run's effect sizes and seed noise, drawn with 3, 10 and 30 seeds (the 10- and
30-seed draws extend the 3-seed ones: the same true effects, more seeds).

What a copy may be called: "like" its own regularizer, with its level inside the reported interval, where that
level's own effect lies beyond the margin; "detected, within the margin" / "no measurable effect" / "inconclusive"
where it does not (by the margin's definition a smaller effect is negligible) - never "like" the other regularizer,
never "no measurable effect" while an effect is detected, and a copy of the baseline never "like" anything. Tests
decide at level 0.05 and a 95 % confidence set misses its level in 5 % of draws, so the properties that hold by
construction are asserted in every draw and those that hold with high probability as rates over the draws.
"""

import numpy as np
import pandas as pd
import planted as P
import pytest

from weightscape import stats as S
from weightscape.answer import dose, judge, seeds, settings
from weightscape.answer.verdict import INCONCLUSIVE, LIKE, NO_EFFECT, SMALL

DRAWS = range(10)
N_SEEDS = (3, 10, 30)
WITHIN = (SMALL, NO_EFFECT)


def true_margins(lens="W") -> pd.Series:
    info = P.fixture(lens).drop_duplicates("metric").set_index("metric")
    return seeds.margins(settings()["equivalence_margin"], info.reset_index()).set_index("metric")["margin"]


def beyond_the_margin(lens="W", factor=1.5) -> set:
    """The regularizer levels whose default-run effect lies beyond `factor` x the margin on some metric."""
    margin = true_margins(lens).reindex(P.metrics(lens)).to_numpy()
    return {c for c, (_, _, mu, _) in P.regularizer_plan(lens).items() if (np.abs(mu) > factor * margin).any()}


def within_the_margin(lens="W", factor=0.5) -> set:
    margin = true_margins(lens).reindex(P.metrics(lens)).to_numpy()
    return {c for c, (_, _, mu, _) in P.regularizer_plan(lens).items() if (np.abs(mu) < factor * margin).all()}


def level_of(copy: str) -> float:
    return float(copy.rsplit("_", 1)[1])


def family_of(copy: str) -> str:
    return "dropout" if copy.startswith("copy:dropout") else "weight_decay"


LENSES = ("W", "delta")


@pytest.fixture(scope="module", params=LENSES)
def draws(request):
    """(lens, {(draw, n_seeds): answer tables})."""
    lens = request.param
    plan = {**P.regularizer_plan(lens), **P.copies(lens), **P.baseline_copy(lens)}
    return lens, {(d, n): P.run(plan, n, lens=lens, rng_seed=d) for d in DRAWS for n in N_SEEDS}


def verdicts(draws) -> pd.DataFrame:
    rows = []
    for (d, n), tables in draws[1].items():
        v = tables["verdicts"]
        rows += [dict(draw=d, n=n, condition=c, verdict=x) for c, x in zip(v["condition"], v["verdict"])]
    return pd.DataFrame(rows)


def test_the_default_scale_has_both_regimes():
    """The fixture is the default run's: on W, weight decay's stronger levels beyond the margin and all of dropout
    within reach of it; on the update Delta W, every weight-decay level and dropout from p = 0.5 beyond it."""
    assert {"weight_decay_0.001", "weight_decay_0.005"} <= beyond_the_margin("W")
    assert not {c for c in beyond_the_margin("W") if c.startswith("dropout")}
    assert {"dropout_0.1", "dropout_0.3"} <= within_the_margin("W")
    assert {"dropout_0.5", "dropout_0.7"} <= beyond_the_margin("delta")
    assert {f"weight_decay_{x:g}" for x in (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3)} <= beyond_the_margin("delta")


def test_a_copy_is_never_called_the_other_regularizer_and_the_baseline_never_like_anything(draws):
    v = verdicts(draws)
    copies = v[v["condition"].str.startswith("copy:") & (v["condition"] != "copy:baseline")]
    wrong = copies[copies["verdict"].str.startswith("like") & (copies["verdict"] != copies["condition"].map(
        lambda c: LIKE[family_of(c)]))]
    assert wrong.empty, wrong
    base = v[v["condition"] == "copy:baseline"]
    assert not base["verdict"].str.startswith("like").any() and len(base) == len(DRAWS) * len(N_SEEDS)


def test_never_no_measurable_effect_while_an_effect_is_detected(draws):
    for tables in draws[1].values():
        detected = tables["effects"].groupby("condition")["detected"].any()
        v = tables["verdicts"].set_index("condition")["verdict"]
        assert not (v[detected.reindex(v.index)] == NO_EFFECT).any()


#: the copies each lens must recognise, and with how many seeds: on W weight decay's levels beyond 1.5 x the margin
#: at 3 seeds; on Delta W dropout from p = 0.5 at 3 seeds (the lens issue's acceptance) and every weight-decay
#: level at 30 (at 3 seeds its equivalence test on the noisy alpha of the strong levels cannot pass the margin)
RECOGNISED = {"W": {3: ("weight_decay_0.001", "weight_decay_0.005")},
              "delta": {3: ("dropout_0.5", "dropout_0.7"),
                        30: tuple(f"weight_decay_{x:g}" for x in (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3))}}


def test_copies_of_levels_beyond_the_margin_are_recognised_at_their_level(draws):
    lens, draws = draws
    recognised, inside = [], []
    for n, levels in RECOGNISED[lens].items():
        assert set(levels) <= beyond_the_margin(lens)
        for level in levels:
            copy = f"copy:{level}"
            for d in DRAWS:
                tables = draws[(d, n)]
                verdict = tables["verdicts"].set_index("condition").at[copy, "verdict"]
                recognised.append(verdict == LIKE[family_of(copy)])
                if recognised[-1]:
                    pl = tables["placement"].set_index(["condition", "regularizer"]).loc[(copy, family_of(copy))]
                    low, high = pl["level_ci_low"], pl["level_ci_high"]
                    if pl["position"] in (dose.OFF_CURVE, dose.BEYOND):  # reported: where it is equivalent
                        low, high = pl["equivalent_low"], pl["equivalent_high"]
                    inside.append(low <= level_of(copy) * (1 + 1e-9) and level_of(copy) <= high * (1 + 1e-9))
    assert np.mean(recognised) >= 0.9, np.mean(recognised)
    assert np.mean(inside) >= 0.9, np.mean(inside)


def test_copies_of_levels_within_the_margin_end_within_the_margin(draws):
    v = verdicts(draws)
    small = v[v["condition"].isin([f"copy:{c}" for c in within_the_margin(draws[0])])]
    assert not small["verdict"].str.startswith("like").any()
    assert small.loc[small["n"] == 30, "verdict"].isin(WITHIN).mean() >= 0.8


def test_no_verdict_weakens_as_seeds_grow(draws):
    """Weaker: a decided verdict that becomes inconclusive or another decided verdict as seeds are added (the two
    'within the margin' states count as one: 'no measurable effect' -> 'detected, within the margin' is the same
    negligible effect, now also detected)."""
    v = verdicts(draws).pivot_table(index=["draw", "condition"], columns="n", values="verdict", aggfunc="first")
    kind = v.apply(lambda col: col.map(lambda x: "within" if x in WITHIN else x))
    weaker = np.zeros(len(kind), dtype=bool)
    for a, b in zip(N_SEEDS, N_SEEDS[1:]):
        weaker |= (kind[a] != INCONCLUSIVE) & (kind[b] != kind[a])
    copies = kind.index.get_level_values("condition").str.startswith("copy:")
    assert weaker[copies].mean() <= 0.05, kind[weaker & copies]
    like = copies & kind[3].str.startswith("like").to_numpy()
    assert (kind.loc[like, 30] == kind.loc[like, 3]).mean() >= 0.9


@pytest.mark.parametrize("lens", LENSES)
def test_intervals_cover_the_planted_values_in_200_draws_at_three_seeds(lens):
    """Effects: every row's decision interval covers its planted mean; equivalent strengths: a copy's confidence
    set covers its level (where the regularizer is placed at all). Both >= 90 % at 3 seeds."""
    plan = {**P.regularizer_plan(lens), **P.copies(lens)}
    truth = {c: dict(zip(P.metrics(lens), v[2])) for c, v in plan.items()}
    cfg = settings()
    effect_hits, level_hits = [], []
    for draw in range(200):
        layers = P.make_layers(plan, 3, lens=lens, rng_seed=1000 + draw)
        cube = seeds.build_cube(S.layer_deltas(layers), cfg["metrics"])
        noise = seeds.noise_table(cube)
        families = dose.regularizer_families(cube, dose.condition_levels(P.make_runs(plan, 3)))
        tables = judge(cube, families, seeds.margins(cfg["equivalence_margin"], noise), noise, cfg)
        e = tables["effects"]
        mu = np.array([truth[c][m] for c, m in zip(e["condition"], e["metric"])])
        effect_hits.append(((e["ci_low"] <= mu) & (mu <= e["ci_high"])).to_numpy())
        pl = tables["placement"]
        pl = pl[pl["condition"].str.startswith("copy:") & pl["placed"]]
        pl = pl[pl["condition"].map(family_of) == pl["regularizer"]]
        level = pl["condition"].map(level_of)
        level_hits += list((pl["level_ci_low"] <= level * (1 + 1e-9)) & (level <= pl["level_ci_high"] * (1 + 1e-9)))
    effect_hits = np.array(effect_hits)
    assert effect_hits.mean() >= 0.9 and effect_hits.mean(axis=0).min() >= 0.9, effect_hits.mean(axis=0).min()
    assert len(level_hits) > 200 and np.mean(level_hits) >= 0.9, np.mean(level_hits)
