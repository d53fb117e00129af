"""weightscape.answer's paper claims and additivity on constructed tables: claim 1 (diversity vs dropout-likeness),
claim 2 (synthetic data: diversity and OOD against the baseline, paired by seed) and combined conditions."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_answer_verdicts import _l, dropout_effect, grid, make_layers, make_runs, mix, run_answer

from weightscape import stats as S
from weightscape.answer import answer
from weightscape.answer import claims as C

AUG_P = (0.15, 0.25, 0.35, 0.45, 0.55, 0.65)
AUGS = {f"aug_{p:g}": ("diversity", np.nan, dropout_effect(p), 0.0) for p in AUG_P}


def diversity_table(conditions, rising=True, seeds=None):
    """One row per condition (per seed when `seeds`), plus the baseline's: vendi scores that rise (or fall) with
    the condition's position in `conditions`; the baseline's are 10 / 5 / 4.5, each draw jittered by +-0.02."""
    rows = []
    for s in seeds if seeds is not None else [None]:
        jitter, seed = (0.0, {}) if s is None else (0.02 * (-1) ** s, {"seed": s})
        rows.append(dict(dataset="d", model="m", condition="baseline", n=100, vendi_pixel=10.0,
                         vendi_embedding=5.0, rho=1.0, vendi_weighted=4.5, **seed))
        for k, c in enumerate(conditions):
            strength = k + 1 if rising else len(conditions) - k
            rows.append(dict(dataset="d", model="m", condition=c, n=100, vendi_pixel=10 + strength + jitter,
                             vendi_embedding=5 + strength + jitter, rho=0.9,
                             vendi_weighted=0.9 * (5 + strength) + jitter, **seed))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("rising, statement", [(True, "supported"), (False, "not supported")])
def test_claim1_follows_the_order_along_dropout(rising, statement):
    res = run_answer(grid(AUGS), diversity=diversity_table(list(AUGS), rising))
    claim = res["claims"].set_index("claim").loc["more diversity, more dropout-like"]
    assert claim["statement"] == statement and claim["n_seeds"] == 5 and claim["n_conditions"] == len(AUG_P)
    t = res["claim1"].set_index(["score", "target"])
    row = t.loc[("vendi_weighted", "equivalent_dropout_p")]
    assert row["spearman_rho"] == pytest.approx(1.0 if rising else -1.0)
    assert set(t.index.get_level_values("score")) == {"vendi_pixel", "vendi_embedding", "vendi_weighted"}
    assert "every Vendi score agrees" in claim["detail"]


def test_claim1_ranks_censored_placements_at_the_bounds_and_names_the_off_curve_ones():
    conds = {"weak": ("diversity", np.nan, dropout_effect(0.03), 0.0),  # below the smallest level
             **AUGS, "strong": ("diversity", np.nan, dropout_effect(1.4), 0.0),  # beyond the largest
             "odd": ("diversity", np.nan, mix((1, dropout_effect(0.4)), (1, {**dropout_effect(0),
                                                                               "log_norm": -0.4 + 0 * _l})), 0.0)}
    div = diversity_table(list(conds))
    res = run_answer(grid(conds), diversity=div)
    t = res["claim1"].set_index(["score", "target"]).loc[("vendi_weighted", "equivalent_dropout_p")]
    assert t["n_conditions"] == len(conds) - 1 and t["left_out"] == "odd"  # every ranked condition used
    value = C.dropout_rank_value(res["placement"])
    assert value["weak"] == 0.0 and value["strong"] == np.inf and np.isnan(value["odd"])
    claim = res["claims"].set_index("claim").loc["more diversity, more dropout-like"]
    assert "not ranked (off the dropout curve): odd" in claim["detail"]


def test_claim1_says_when_the_vendi_scores_disagree():
    div = diversity_table(list(AUGS))
    div["vendi_pixel"] = div["vendi_pixel"].to_numpy()[::-1]  # the pixel score falls where the others rise
    res = run_answer(grid(AUGS), diversity=div)
    claim = res["claims"].set_index("claim").loc["more diversity, more dropout-like"]
    assert "the three Vendi scores disagree" in claim["detail"] and "vendi pixel falls" in claim["detail"]


def test_claim1_is_inconclusive_where_dropout_places_nothing():
    flat = {m: 0 * _l for m in ("log_norm", "alpha", "log_spectral_norm", "entropy")}
    conds = grid(AUGS, dropout=())
    conds.update({f"dropout_{p:g}": ("dropout", p, flat, 0.0) for p in (0.1, 0.3, 0.5, 0.7)})
    res = run_answer(conds, diversity=diversity_table(list(AUGS)))
    claim = res["claims"].set_index("claim").loc["more diversity, more dropout-like"]
    assert claim["statement"] == "inconclusive" and "dropout places no condition" in claim["reason"]


def test_spearman_interval_and_p_agree():
    rng = np.random.default_rng(2)
    for _ in range(50):
        x, y = rng.normal(size=8), rng.normal(size=8)
        s = C.spearman(x, y)
        assert s["spearman_rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
        assert (s["spearman_ci_low"] > 0 or s["spearman_ci_high"] < 0) == (s["spearman_p"] < 0.05)


def test_claim1_with_few_conditions_is_inconclusive():
    few = dict(list(AUGS.items())[:3])
    res = run_answer(grid(few), diversity=diversity_table(list(few)))
    claim = res["claims"].set_index("claim").loc["more diversity, more dropout-like"]
    assert claim["statement"] == "inconclusive" and "only 3 conditions are ranked" in claim["reason"]


def test_diversity_ratio_to_the_baseline_by_hand():
    div = pd.DataFrame({"dataset": ["a", "a", "b", "b"], "model": "m", "condition": ["baseline", "x"] * 2,
                        "vendi_pixel": [2.0, 3.0, 10.0, 30.0]})
    assert C.diversity_by_condition(div).loc["x", "vendi_pixel"] == pytest.approx((1.5 + 3.0) / 2)


def synthetic_runs(shift, n_seeds=5):
    """runs with ood_accuracy / ood_ece per seed: the mix condition differs from the baseline by `shift`."""
    rng = np.random.default_rng(3)
    rows = []
    for s in range(n_seeds):
        acc, ece = 0.6 + 0.05 * rng.normal(), 0.1 + 0.01 * rng.normal()
        rows.append(dict(dataset="d", model="m", condition="baseline", family="baseline", level=0.0, seed=s,
                         ood_accuracy=acc, ood_ece=ece))
        for c, (da, de) in shift.items():
            rows.append(dict(dataset="d", model="m", condition=c, family="synthetic", level=0.5, seed=s,
                             ood_accuracy=acc + da + 0.003 * rng.normal(), ood_ece=ece + de + 0.002 * rng.normal()))
    return pd.DataFrame(rows)


def test_claim2_paired_by_seed_matches_ttest_rel():
    runs = synthetic_runs({"mix_good": (0.03, -0.01), "mix_bad": (-0.03, 0.0)})
    div = diversity_table(["mix_good", "mix_bad"], seeds=range(5))
    table, overall = C.synthetic_claim(runs, div, ["mix_good", "mix_bad"])
    good = table.set_index(["condition", "quantity"]).loc[("mix_good", "ood_accuracy")]
    a = runs[runs.condition == "mix_good"].sort_values("seed")["ood_accuracy"].to_numpy()
    b = runs[runs.condition == "baseline"].sort_values("seed")["ood_accuracy"].to_numpy()
    ref = stats.ttest_rel(a, b)
    assert good["difference"] == pytest.approx((a - b).mean()) and good["p"] == pytest.approx(ref.pvalue)
    assert good["n_seeds"] == 5 and good["better"]
    assert table.set_index(["condition", "quantity"]).at[("mix_good", "ood_ece"), "better"]  # lower ECE is better
    said = table.drop_duplicates("condition").set_index("condition")["statement"]
    assert said["mix_good"].startswith("supported") and said["mix_bad"].startswith("not supported")
    assert overall["statement"] == "inconclusive"  # one for, one against
    _, overall = C.synthetic_claim(runs, div, ["mix_good"])
    assert overall["statement"] == "supported"


def test_claim2_with_one_diversity_draw_has_no_interval():
    runs = synthetic_runs({"mix_good": (0.03, -0.01)})
    table, overall = C.synthetic_claim(runs, diversity_table(["mix_good"]), ["mix_good"])
    v = table.set_index("quantity").loc["vendi_weighted"]
    assert v["n_draws"] == 1 and np.isnan(v["ci_low"]) and v["difference"] > 0
    assert overall["statement"] == "inconclusive" and "no CI (one draw)" in overall["detail"]
    # the condition drawn per seed, the baseline once: each draw is compared with the baseline's fixed value
    div = diversity_table(["mix_good"], seeds=range(5))
    once = div[div.condition == "baseline"].iloc[:1].drop(columns="seed")
    div = pd.concat([div[div.condition != "baseline"], once])
    table, _ = C.synthetic_claim(runs, div, ["mix_good"])
    v = table.set_index("quantity").loc["vendi_weighted"]
    assert v["n_draws"] == 5 and v["ci_low"] > 0
    assert v["difference"] == pytest.approx(0.9 * 6 - 4.5 + 0.004)  # + the mean jitter, 0.02 / 5
    _, overall = C.synthetic_claim(synthetic_runs({"mix_good": (0.03, -0.01)}, n_seeds=2), None, ["mix_good"])
    assert overall["statement"] == "inconclusive" and "fewer than 3 seeds" in overall["detail"]


def test_additivity_verdicts():
    data = {"aug": ("diversity", np.nan, dropout_effect(0.2), 0.0)}
    both = mix((1, dropout_effect(0.2)), (1, dropout_effect(0.3)))
    combined = {"aug+drop": ("combined", np.nan, both, 0.0),
                "aug+drop_sub": ("combined", np.nan, mix((0.5, both)), 0.0),
                "aug+drop_super": ("combined", np.nan, mix((1.6, both)), 0.0)}
    conds = grid({**data, **combined})
    pairs = {c: ("aug", "dropout_0.3") for c in combined} | {"ghost": ("aug", "dropout_0.3")}
    res = answer(S.layer_deltas(make_layers(conds)), make_runs(conds), combined=pairs)
    add = res["additivity"].set_index(["condition", "metric"])
    assert add.at[("aug+drop", "alpha"), "verdict"] == "additive within the margin"
    assert add.at[("aug+drop_sub", "alpha"), "verdict"] == "sub-additive"
    assert add.at[("aug+drop_super", "alpha"), "verdict"] == "super-additive"
    assert add.at[("aug+drop", "alpha"), "sum"] == pytest.approx(0.5, abs=0.05)
    assert add.at[("ghost", "alpha"), "verdict"] == "inconclusive"
    assert "not in the layer table: ghost" in add.at[("ghost", "alpha"), "reason"]
    # combined conditions are placed on the axes but get no data-condition verdict
    assert "aug+drop" in set(res["placement"]["condition"]) and "aug+drop" not in set(res["verdicts"]["condition"])
