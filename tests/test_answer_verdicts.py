"""weightscape.answer end to end on CONSTRUCTED layer tables (no training): a grid whose dropout and weight-decay
effects are known by construction, probe conditions built from them, and what each state of the rule needs.

These are scenario tests of the rule's branches on a grid of its own (12 layers, effects of similar size); the
positive controls at the default run's own scale are tests/test_answer_controls.py. The generator builds a
WeightWatcher-like layers table (pretrained + fine-tuned rows) and runs the real `stats.layer_deltas` on it, so the
answer package reads exactly what the pipeline gives it.
"""

import numpy as np
import pandas as pd
import pytest

from weightscape import stats as S
from weightscape.answer import answer
from weightscape.answer import dose
from weightscape.answer.verdict import INCONCLUSIVE, LIKE, NO_EFFECT

LAYERS = [f"L{i:02d}" for i in range(12)]
METRICS = ("log_norm", "alpha", "log_spectral_norm", "entropy")
#: each metric lives on its own scale; placement must not depend on it (it divides by the seed noise)
UNIT = {"alpha": 1.0, "entropy": 0.2, "log_norm": 0.05, "log_spectral_norm": 0.1}
DROPOUT_P = (0.1, 0.3, 0.5, 0.7)
WEIGHT_DECAY = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3)
_l = np.arange(len(LAYERS))
#: dropout: effect = p x pattern, on alpha and entropy (per-layer shape differs between them), nothing on norms
DROP = {"alpha": 1.0 + 0.4 * np.cos(_l), "entropy": 0.6 + 0.3 * np.sin(_l), "log_norm": 0 * _l,
        "log_spectral_norm": 0 * _l}
#: weight decay: effect = (log10 lambda + 6) / 4 x pattern, mostly on the norms (a different per-layer shape)
WD = {"log_norm": -(0.8 + 0.3 * np.sin(2 * _l)), "log_spectral_norm": -(0.6 + 0.3 * np.cos(3 * _l)),
      "alpha": 0.02 * np.sin(_l), "entropy": 0 * _l}
ZERO = {m: 0 * _l for m in METRICS}


def dropout_effect(p):
    return {m: p * DROP[m] for m in METRICS}


def wd_effect(lam):
    return {m: (np.log10(lam) + 6) / 4 * WD[m] for m in METRICS}


def mix(*parts):
    """Weighted sum of effects: mix((0.5, a), (0.5, b))."""
    return {m: sum(w * e[m] for w, e in parts) for m in METRICS}


def grid(probes=None, dropout=DROPOUT_P, weight_decay=WEIGHT_DECAY):
    """{condition: (family, level, effect, swing)}: baseline, the regularizer levels and `probes`."""
    g = {"baseline": ("baseline", 0.0, ZERO, 0.0)}
    g.update({f"dropout_{p:g}": ("dropout", p, dropout_effect(p), 0.0) for p in dropout})
    g.update({f"weight_decay_{w:g}": ("weight_decay", w, wd_effect(w), 0.0) for w in weight_decay})
    g.update(probes or {})
    return g


PROBES = {
    "like_dropout": ("diversity", np.nan, dropout_effect(0.3), 0.0),
    "like_baseline": ("diversity", np.nan, ZERO, 0.0),
    "like_wd": ("diversity", np.nan, wd_effect(1e-3), 0.0),
    "halfway": ("diversity", np.nan, mix((0.5, dropout_effect(0.5)), (0.5, wd_effect(1e-3))), 0.0),
    # dropout-like, plus a measurable log_norm shift that dropout itself never makes
    "dropout_plus": ("synthetic", 0.5, mix((1, dropout_effect(0.5)), (1, {**ZERO, "log_norm": -0.3 + 0 * _l}))
                     , 0.0),
    # no effect on average, but a seed-to-seed swing so wide that neither an effect nor equivalence can be shown
    "noisy": ("diversity", np.nan, ZERO, 0.5),
}


def make_layers(conditions, n_seeds=5, rng_seed=0):
    """Layers table: per seed one pretrained table and one fine-tuned table per condition.

    finetuned = pretrained + base + effect + shared seed noise (same for every condition of a seed: it cancels in
    `relative`, as common initialisation and data order do) + the run's own noise + the condition's `swing`
    (+swing, -swing, ... across seeds, 0 for the last of an odd number: a spread that averages to zero).
    """
    rng = np.random.default_rng(rng_seed)
    pre = {m: (2.0 + 0.1 * _l) * UNIT[m] for m in METRICS}
    base = {m: (0.5 + 0.05 * np.cos(_l)) * UNIT[m] for m in METRICS}
    rows = []

    def add(seed, condition, family, stage, values):
        for i, name in enumerate(LAYERS):
            rows.append(dict(dataset="d", model="m", condition=condition, seed=seed, family=family, stage=stage,
                             longname=name, layer_type="dense", status="success",
                             **{m: values[m][i] for m in METRICS}))

    for seed in range(n_seeds):
        shared = {m: UNIT[m] * (0.1 * rng.normal() + 0.1 * rng.normal(size=len(LAYERS))) for m in METRICS}
        add(seed, "pretrained", "pretrained", "pretrained", pre)
        for name, (family, _, effect, swing) in conditions.items():
            sign = 0 if n_seeds % 2 and seed == n_seeds - 1 else (-1) ** seed
            own = {m: UNIT[m] * (swing * sign + 0.015 * rng.normal() + 0.04 * rng.normal(size=len(LAYERS)))
                   for m in METRICS}
            add(seed, name, family, "finetuned",
                {m: pre[m] + base[m] + UNIT[m] * effect[m] + shared[m] + own[m] for m in METRICS})
    return pd.DataFrame(rows)


def make_runs(conditions, n_seeds=5):
    return pd.DataFrame([dict(dataset="d", model="m", condition=c, family=f, level=lv, seed=s)
                         for c, (f, lv, _, _) in conditions.items() for s in range(n_seeds)])


def run_answer(conditions, n_seeds=5, **kw):
    deltas = S.layer_deltas(make_layers(conditions, n_seeds))
    return answer(deltas, make_runs(conditions, n_seeds), config=kw.pop("config", None), **kw)


@pytest.fixture(scope="module")
def result():
    return run_answer(grid(PROBES), n_seeds=3)


def verdict_of(result, condition):
    row = result["verdicts"].set_index("condition").loc[condition]
    return row["verdict"], row["reason"]


def placed(result, condition, regularizer):
    return result["placement"].set_index(["condition", "regularizer"]).loc[(condition, regularizer)]


# ----------------------------------------------------------------------------------------------- verdicts
def test_dropout_like_condition_is_like_dropout_at_its_p(result):
    pl = placed(result, "like_dropout", "dropout")
    assert pl["position"] == dose.WITHIN and pl["level_ci_low"] <= 0.3 <= pl["level_ci_high"]
    assert pl["level_ci_high"] - pl["level_ci_low"] < 0.2  # the set is a real interval, not the whole axis
    verdict, reason = verdict_of(result, "like_dropout")
    assert verdict == LIKE["dropout"] and pl["text"] in reason
    assert placed(result, "like_dropout", "weight_decay")["off_curve"]


def test_weight_decay_like_condition_is_like_weight_decay_near_its_lambda(result):
    pl = placed(result, "like_wd", "weight_decay")
    assert pl["level_ci_low"] <= 1e-3 <= pl["level_ci_high"]
    assert verdict_of(result, "like_wd")[0] == LIKE["weight_decay"]


def test_baseline_like_condition_is_never_like_anything(result):
    assert verdict_of(result, "like_baseline")[0] == NO_EFFECT
    e = result["effects"].query("condition == 'like_baseline'")
    assert e["equivalent"].all() and (e["ci90_low"] > -e["margin"]).all() and (e["ci90_high"] < e["margin"]).all()
    # the origin is on both curves: a condition compatible with no effect is off neither
    assert not result["placement"].query("condition == 'like_baseline'")["off_curve"].any()


def test_a_mix_of_both_regularizers_is_neither(result):
    verdict, reason = verdict_of(result, "halfway")
    assert verdict == INCONCLUSIVE and "off both curves" in reason


def test_a_condition_that_moves_what_its_nearer_regularizer_does_not_is_off_its_curve(result):
    verdict, reason = verdict_of(result, "dropout_plus")
    assert verdict == INCONCLUSIVE and placed(result, "dropout_plus", "dropout")["off_curve"]
    assert not placed(result, "dropout_plus", "dropout")["on_curve"]


def test_noisy_condition_is_neither_effect_nor_absence(result):
    verdict, reason = verdict_of(result, "noisy")
    assert verdict == INCONCLUSIVE and reason.startswith("none detected, and within the margin not shown")


def test_what_the_regularizers_move_is_stated_per_family_and_metric(result):
    r = result["regularizers"].set_index(["family", "metric"])
    assert r.at[("dropout", "alpha"), "moves"] and r.at[("weight_decay", "log_norm"), "moves"]
    assert not r.at[("dropout", "log_norm"), "moves"]
    assert r.at[("dropout", "log_norm"), "statement"].startswith("no dropout level is detected on log norm")


def test_every_table_carries_n_seeds(result):
    for name, table in result.items():
        assert table.empty or "n_seeds" in table.columns or name == "excluded", name
    assert set(result["verdicts"]["n_seeds"]) == {3}


def test_curves_carry_the_decision_intervals_of_the_effects(result):
    c = result["curves"].merge(result["effects"], on=["condition", "metric"], suffixes=("", "_effect"))
    assert set(c.loc[c["family"] == "dropout", "level"]) == set(DROPOUT_P)
    assert (c.loc[c["family"] == "weight_decay", "axis"] == "log10").all()
    assert np.allclose(c["ci_low"], c["ci_low_effect"]) and np.allclose(c["effect"], c["mean"])
    assert c.loc[(c["family"] == "dropout") & (c["metric"] == "log_norm"), "moves"].eq(False).all()


def test_deterministic(result):
    again = run_answer(grid(PROBES), n_seeds=3)
    pd.testing.assert_frame_equal(again["placement"], result["placement"])
    pd.testing.assert_frame_equal(again["verdicts"], result["verdicts"])


def test_sensitivity_repeats_the_verdicts_at_half_and_twice_the_margin(result):
    sens = result["sensitivity"].set_index("condition")
    assert list(sens.columns[-4:]) == ["margin_0.5x", "margin_1x", "margin_2x", "depends_on_margin"]
    assert (sens["margin_1x"] == result["verdicts"].set_index("condition")["verdict"]).all()
    doubled = run_answer(grid(PROBES), n_seeds=3, config={"equivalence_margin": {"default": {"relative": 0.1}}})
    assert (doubled["verdicts"].set_index("condition")["verdict"] == sens["margin_2x"]).all()
    assert (sens["depends_on_margin"] == (sens[["margin_0.5x", "margin_1x", "margin_2x"]].nunique(axis=1) > 1)).all()


# ----------------------------------------------------------------------------------------------- edge cases
def test_small_dropout_effect_is_below_the_smallest_level():
    res = run_answer(grid({"weak": ("diversity", np.nan, dropout_effect(0.03), 0.0)}), n_seeds=3)
    pl = placed(res, "weak", "dropout")
    assert pl["position"] == dose.BELOW and np.isnan(pl["level"]) and pl["level_ci_low"] == 0.0
    assert pl["text"].startswith("p < ")


def test_stronger_than_the_largest_level_is_beyond_it_never_extrapolated():
    res = run_answer(grid({"strong": ("diversity", np.nan, dropout_effect(1.4), 0.0)}), n_seeds=3)
    pl = placed(res, "strong", "dropout")
    assert pl["position"] == dose.BEYOND and pl["level_ci_low"] == 0.7 and pl["level_ci_high"] == np.inf
    assert pl["text"] == "beyond the largest level (p > 0.70)"
    assert verdict_of(res, "strong")[0] == INCONCLUSIVE  # no measured level matches it


def test_nothing_is_placed_on_a_regularizer_that_moves_no_metric():
    flat = {m: 0 * _l for m in METRICS}
    g = grid({"like_wd": ("diversity", np.nan, wd_effect(1e-3), 0.0)}, dropout=())
    g.update({f"dropout_{p:g}": ("dropout", p, flat, 0.0) for p in DROPOUT_P})
    res = run_answer(g, n_seeds=3, config={"alpha": 0.01})  # no chance detection among dropout's 20 null rows
    assert not res["regularizers"].query("family == 'dropout'")["moves"].any()
    pl = res["placement"].query("regularizer == 'dropout'")
    assert (pl["position"] == dose.NOT_PLACED).all() and pl["level"].isna().all()
    assert pl["text"].str.startswith("not placed: dropout moves none of the metrics").all()
    assert verdict_of(res, "like_wd")[0] == LIKE["weight_decay"]  # off a curve of no effect all the same


def test_fewer_than_three_seeds_still_returns_and_says_so():
    res = run_answer(grid(PROBES), n_seeds=2)
    assert (res["verdicts"]["verdict"] == INCONCLUSIVE).all()
    assert res["verdicts"]["reason"].str.contains("fewer than 3 seeds").all()
    assert (res["verdicts"]["n_seeds"] == 2).all()
    assert not res["regularizers"]["moves"].any()
    assert res["regularizers"]["statement"].str.startswith("fewer than 3 seeds (n = 2): whether").all()
    one = run_answer(grid(PROBES), n_seeds=1)
    assert (one["verdicts"]["verdict"] == INCONCLUSIVE).all() and one["effects"]["ci_low"].isna().all()
    assert one["placement"]["text"].str.startswith("not placed: fewer than 2 seeds").all()


def test_missing_dropout_family_gives_inconclusive_with_reason():
    res = run_answer(grid(PROBES, dropout=()), n_seeds=3)
    verdict, reason = verdict_of(res, "like_dropout")
    assert verdict == INCONCLUSIVE and "no dropout levels in the grid" in reason
    assert verdict_of(res, "like_baseline")[0] == NO_EFFECT
    assert res["regularizers"].query("family == 'dropout'")["statement"].str.startswith("no dropout levels").all()


def test_no_regularizer_at_all_still_returns():
    res = run_answer(grid(PROBES, dropout=(), weight_decay=()), n_seeds=3)
    assert res["placement"].empty and res["curves"].empty
    assert verdict_of(res, "like_wd")[0] == INCONCLUSIVE


def test_one_line_value_errors():
    deltas = S.layer_deltas(make_layers(grid()))
    with pytest.raises(ValueError, match=r"stats.metrics\[0\]: 'nope' is not allowed"):
        answer(deltas, make_runs(grid()), config={"metrics": ["nope"]})
    with pytest.raises(ValueError, match="none of the chosen metrics"):
        answer(deltas, make_runs(grid()), config={"metrics": ["mp_softrank"]})
    with pytest.raises(ValueError, match="lacks column"):
        answer(deltas, make_runs(grid()).drop(columns="level"))
    with pytest.raises(ValueError, match="stats.margins: unknown key"):
        answer(deltas, make_runs(grid()), config={"margins": 1})
