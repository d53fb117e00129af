"""The answer's tables beside the verdict, on constructed inputs: power (against the textbook numbers of the
statistics note and scipy's noncentral t), the fit confound, spectral changes as predictors, and the layer groups."""

import numpy as np
import pandas as pd
import planted as P
import pytest
from scipy import stats

from weightscape.answer import outcomes, power


def test_power_matches_the_noncentral_t_and_the_known_seed_counts():
    # 80 % power, two-sided 5 %, paired t: d_z 0.5 -> ~34, 0.7 -> ~19, 1.0 -> ~10, 1.5 -> ~6, 2 -> ~5, 3 -> ~4
    for d, n in ((0.5, 34), (0.7, 19), (1.0, 10), (1.5, 6), (2.0, 5), (3.0, 4)):
        assert power.seeds_for(lambda k: power._power_two_sided(d, k, 0.05)) == n
    q = stats.t.ppf(0.975, 2)
    by_hand = stats.nct.sf(q, 2, 4 * np.sqrt(3)) + stats.nct.cdf(-q, 2, 4 * np.sqrt(3))
    assert power._power_two_sided(4.0, 3, 0.05) == pytest.approx(by_hand)
    d = power.mde_d_z(3, 0.05)
    assert power._power_two_sided(d, 3, 0.05) == pytest.approx(0.8, abs=1e-6)


def test_the_power_table_covers_every_metric_of_the_undecided_verdicts_only():
    effects = pd.DataFrame([dict(condition=c, family="diversity", metric=m, n_seeds=3, mean=mean, sd=0.1,
                                 d_z=mean / 0.1, margin=0.05, state=st)
                            for c, rows in {"small": [("a", 0.01, "undecided"), ("b", 0.02, "undecided")],
                                            "big": [("a", 0.2, "detected"), ("b", 0.01, "undecided")],
                                            "done": [("a", 0.5, "moves beyond the margin"),
                                                     ("b", 0.0, "within the margin")]}.items()
                            for m, mean, st in rows])
    verdicts = pd.DataFrame({"condition": ["small", "big", "done"],
                             "verdict": ["inconclusive", "inconclusive", "like dropout"]})
    table = power.power_table(effects, verdicts)
    assert set(table["condition"]) == {"small", "big"} and len(table) == 4
    big = table.set_index(["condition", "metric"]).loc[("big", "a")]
    assert big["decides_by"] == "beyond the margin"
    assert big["to_decide"] == power.seeds_for(lambda k: power._power_one_sided(1.5, k, 0.025))
    decide = power.seeds_to_decide(table).set_index("condition")
    assert decide.at["big", "decides_by"] == "beyond the margin" and decide.at["big", "metric"] == "a"
    assert decide.at["small", "decides_by"] == "within the margin"  # every metric within it, the last decides
    assert decide.at["small", "more_seeds"] == decide.at["small", "seeds_needed"] - 3


def test_the_confound_is_the_correlation_of_effects_with_training_loss():
    rng = np.random.default_rng(0)
    conditions = [f"c{i}" for i in range(12)]
    loss = pd.Series(rng.normal(0, 1, 12), index=conditions)
    fit = pd.DataFrame({"condition": conditions, "quantity": "final_train_loss", "difference": loss.to_numpy()})
    effects = pd.concat([pd.DataFrame({"condition": conditions, "metric": "follows", "n_seeds": 3,
                                       "mean": 2 * loss.to_numpy() + rng.normal(0, 0.1, 12)}),
                         pd.DataFrame({"condition": conditions, "metric": "ignores", "n_seeds": 3,
                                       "mean": rng.normal(0, 1, 12)})])
    table = outcomes.confound(effects, fit).set_index("metric")
    r = stats.pearsonr(loss, effects[effects["metric"] == "follows"]["mean"])
    assert table.at["follows", "r"] == pytest.approx(r.statistic) and table.at["follows", "explained"]
    assert table.at["follows", "r2_ci_low"] == pytest.approx(r.confidence_interval().low ** 2)
    assert not table.at["ignores", "explained"] and table.at["ignores", "r2_ci_low"] == 0.0


def test_predictors_say_predictive_not_predictive_or_inconclusive():
    conditions = [f"c{i}" for i in range(30)]
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    runs = pd.DataFrame([dict(dataset="d", model="m", condition=c, seed=s, id_accuracy=0.8 + 0.01 * x[i],
                              ood_accuracy=0.6 + 0.001 * rng.normal(), id_ece=0.1)
                         for i, c in enumerate(["baseline"] + conditions[1:]) for s in range(3)])
    effects = pd.DataFrame({"condition": conditions[1:], "metric": "m", "n_seeds": 3, "mean": x[1:]})
    table = outcomes.predictors(effects, runs, outcomes=("id_accuracy", "ood_accuracy")).set_index("outcome")
    assert table.at["id_accuracy", "statement"] == "predictive" and table.at["id_accuracy", "rho"] > 0.99
    assert table.at["ood_accuracy", "statement"] in ("inconclusive", "not predictive")
    assert (table["ci_low"] <= table["rho"]).all() and (table["rho"] <= table["ci_high"]).all()


def test_the_answer_carries_both_lenses_the_groups_and_the_tables_beside_the_verdict():
    plan = {**P.regularizer_plan("delta"), **P.copies("delta", of=["dropout_0.7"])}
    tables = P.run(plan, 3, lens="delta", rng_seed=2)
    groups = tables["groups"]
    assert set(groups["grouping"]) == {"position", "kind"} and (groups["n_layers"] == 1).all()
    whole = tables["effects"].set_index(["condition", "metric"])
    one = groups[groups["grouping"] == "position"].set_index(["condition", "metric"])
    assert np.allclose(one["mean"], whole.loc[one.index, "mean"])  # one layer: the group is the network
    assert set(tables["power"]["condition"]) <= set(tables["verdicts"].query("verdict == 'inconclusive'")["condition"])
    assert {"lens"} <= set(tables["effects"].columns) and set(tables["effects"]["lens"]) == {"W"}
