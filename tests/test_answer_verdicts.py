"""weightscape.answer end to end on CONSTRUCTED layer tables (no training): a grid whose dropout and weight-decay
effects are known by construction, probe conditions built from them, and the verdicts the rule must reach.

The generator builds a WeightWatcher-like layers table (pretrained + fine-tuned rows) and runs the real
`stats.layer_deltas` on it, so the answer package reads exactly what the pipeline gives it.
"""

import numpy as np
import pandas as pd
import pytest

from weightscape import stats as S
from weightscape.answer import VERDICT_RULE, answer
from weightscape.answer.dose import BELOW, BEYOND, WITHIN

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
    return answer(deltas, make_runs(conditions, n_seeds), config={"n_boot": 400, **kw.pop("config", {})}, **kw)


@pytest.fixture(scope="module")
def result():
    return run_answer(grid(PROBES))


def verdict_of(result, condition):
    row = result["verdicts"].set_index("condition").loc[condition]
    return row["verdict"], row["reason"]


# ----------------------------------------------------------------------------------------------- verdicts
def test_dropout_like_condition_is_placed_at_its_p(result):
    pl = result["placement"].set_index(["condition", "regularizer"]).loc[("like_dropout", "dropout")]
    assert pl["position"] == WITHIN
    assert pl["level"] == pytest.approx(0.3, abs=0.05)
    assert pl["level_ci_low"] <= 0.3 <= pl["level_ci_high"]
    verdict, _ = verdict_of(result, "like_dropout")
    assert verdict.startswith("like dropout (about p = 0.")
    assert verdict == f"like dropout (about p = {pl['level']:.2f})"


def test_baseline_like_condition_has_no_measurable_effect(result):
    assert verdict_of(result, "like_baseline")[0] == ("no measurable effect (equivalent to baseline within the "
                                                       "margin)")
    e = result["effects"].query("condition == 'like_baseline'")
    assert e["equivalent"].all() and (e["ci90_low"] > -e["margin"]).all() and (e["ci90_high"] < e["margin"]).all()


def test_weight_decay_like_condition_is_placed_near_its_lambda(result):
    # adjacent measured levels are a factor 2-5 apart: a factor of 2 is within the grid's own resolution
    pl = result["placement"].set_index(["condition", "regularizer"]).loc[("like_wd", "weight_decay")]
    assert pl["position"] == WITHIN
    assert abs(np.log10(pl["level"]) - np.log10(1e-3)) < np.log10(2)
    assert verdict_of(result, "like_wd")[0].startswith("like weight decay (about lambda = ")


def test_halfway_condition_is_not_called_like_either(result):
    verdict, reason = verdict_of(result, "halfway")
    comp = result["comparison"].set_index("condition").loc["halfway"]
    separated = comp["diff_ci_low"] > 0 or comp["diff_ci_high"] < 0
    assert verdict == "inconclusive" or (separated and verdict.startswith("like"))
    # this one moves log_norm, which dropout does not move, and alpha, which weight decay does not
    assert verdict == "inconclusive"
    assert reason


def test_condition_moving_a_metric_its_nearer_family_does_not_move_is_inconclusive(result):
    verdict, reason = verdict_of(result, "dropout_plus")
    assert result["comparison"].set_index("condition").at["dropout_plus", "closer_to"] == "dropout"
    assert verdict == "inconclusive"
    assert "dropout does not move log norm measurably" in reason


def test_noisy_condition_is_neither_effect_nor_absence(result):
    verdict, reason = verdict_of(result, "noisy")
    assert verdict == "inconclusive" and reason.startswith("no metric moves measurably")


def test_regularizer_measurability_is_stated_per_family_and_metric(result):
    r = result["regularizers"].set_index(["family", "metric"])
    assert r.at[("dropout", "alpha"), "measurable"] and r.at[("weight_decay", "log_norm"), "measurable"]
    assert not r.at[("dropout", "log_norm"), "measurable"]
    assert r.at[("dropout", "log_norm"), "statement"] == "at these levels dropout does not move log norm measurably"


def test_every_table_carries_n_seeds_and_the_rule_names_every_verdict(result):
    for name, table in result.items():
        if len(table):
            assert "n_seeds" in table.columns, name
    assert set(result["verdicts"]["n_seeds"]) == {5}
    for text in ("like dropout (about p = ...)", "like weight decay (about lambda = ...)", "inconclusive",
                 "no measurable effect (equivalent to\nbaseline within the margin)"):
        assert text.replace("\n", " ") in VERDICT_RULE.replace("\n", " ")


def test_curves_are_monotone_and_cover_every_level(result):
    c = result["curves"]
    assert set(c.loc[c["family"] == "dropout", "level"]) == set(DROPOUT_P)
    assert (c.loc[c["family"] == "weight_decay", "axis"] == "log10").all()
    for _, part in c.groupby(["family", "metric"]):
        f = part.sort_values("level")["fitted"].to_numpy()
        assert (np.diff(f) >= -1e-12).all() or (np.diff(f) <= 1e-12).all()


def test_deterministic_given_the_seed(result):
    again = run_answer(grid(PROBES))
    pd.testing.assert_frame_equal(again["placement"], result["placement"])
    pd.testing.assert_frame_equal(again["verdicts"], result["verdicts"])


# ----------------------------------------------------------------------------------------------- edge cases
def test_small_dropout_effect_is_below_the_smallest_level():
    res = run_answer(grid({"weak": ("diversity", np.nan, dropout_effect(0.04), 1.0)}))
    pl = res["placement"].set_index(["condition", "regularizer"]).loc[("weak", "dropout")]
    assert pl["position"] == BELOW and np.isnan(pl["level"]) and pl["level_ci_low"] == 0.0


def test_strong_dropout_effect_is_at_or_beyond_the_largest_level_never_extrapolated():
    res = run_answer(grid({"strong": ("diversity", np.nan, dropout_effect(1.0), 0.0)}))
    pl = res["placement"].set_index(["condition", "regularizer"]).loc[("strong", "dropout")]
    assert pl["position"] == BEYOND and pl["level"] == 0.7 and pl["level_ci_high"] == np.inf
    assert verdict_of(res, "strong")[0] == "like dropout (about p >= 0.70)"


def test_fewer_than_three_seeds_still_returns_and_says_so():
    res = run_answer(grid(PROBES), n_seeds=2)
    assert (res["verdicts"]["verdict"] == "inconclusive").all()
    assert res["verdicts"]["reason"].str.contains("fewer than 3 seeds").all()
    assert (res["verdicts"]["n_seeds"] == 2).all()
    assert not res["regularizers"]["measurable"].any()
    assert res["regularizers"]["statement"].str.startswith("fewer than 3 seeds (n = 2): whether").all()
    one = run_answer(grid(PROBES), n_seeds=1)
    assert (one["verdicts"]["verdict"] == "inconclusive").all() and one["effects"]["ci_low"].isna().all()


def test_missing_dropout_family_gives_inconclusive_with_reason():
    res = run_answer(grid(PROBES, dropout=()))
    verdict, reason = verdict_of(res, "like_dropout")
    assert verdict == "inconclusive" and reason.startswith("no dropout levels in the grid")
    assert verdict_of(res, "like_baseline")[0].startswith("no measurable effect")
    assert res["regularizers"].query("family == 'dropout'")["statement"].str.startswith("no dropout levels").all()


def test_no_regularizer_at_all_still_returns():
    res = run_answer(grid(PROBES, dropout=(), weight_decay=()))
    assert res["placement"].empty and res["comparison"].empty
    assert verdict_of(res, "like_wd")[0] == "inconclusive"


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
