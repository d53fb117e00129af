"""Loss curvature across seeds (weightscape.answer.runlevel) on constructed runs tables."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from weightscape.answer.runlevel import FLATTER, NO_CHANGE, UNDECIDED, curvature_effects
from weightscape.answer_report import curvature_line as _curvature_line

MARGIN = {"default": {"absolute": 0.1}}
DROPOUT = {0.25: -0.4, 0.5: -0.8, 0.75: -1.2}  # planted log10 effect of each dropout level on the trace


def _runs(n_seeds=4, flat=-0.6, same=0.0, noise=0.01, dropout=DROPOUT):
    """log10 curvature: pretrained 3, baseline +0.5 (+ the seed's own shift); the other conditions relative to it."""
    rng = np.random.default_rng(0)
    conditions = [("baseline", "baseline", 0.0, 0.0), ("flat", "diversity", np.nan, flat),
                  ("same", "diversity", np.nan, same)]
    conditions += [(f"dropout_{p}", "dropout", p, shift) for p, shift in dropout.items()]
    rows = []
    for seed in range(n_seeds):
        base = 0.5 + rng.normal(0, 0.2)  # the seed's own baseline change: cancels in the relative effect
        for condition, family, level, shift in conditions:
            value = 3 + base + shift + (rng.normal(0, noise) if condition != "baseline" else 0.0)
            rows.append(dict(dataset="d", model="m", condition=condition, family=family, level=level, seed=seed,
                             hessian_trace=10 ** value, hessian_trace_pretrained=1e3))
    return pd.DataFrame(rows)


def test_a_planted_flatter_condition_is_flatter_placed_on_dropout_and_an_unchanged_one_equivalent():
    table = curvature_effects(_runs(), MARGIN).set_index(["level", "name"])
    flat = table.loc[("condition", "flat")]
    assert flat["statement"] == FLATTER and flat["mean"] == pytest.approx(-0.6, abs=0.02)
    # -0.6 lies halfway between dropout 0.25 (-0.4) and 0.5 (-0.8) on the monotone dose-response
    assert flat["dropout_level"] == pytest.approx(0.375, abs=0.02) and flat["dropout_position"] == "within the " \
        "measured levels"
    assert flat["dropout_level_ci_low"] <= flat["dropout_level"] <= flat["dropout_level_ci_high"]
    assert flat["dropout_moves"]  # dropout moves the trace, so the placement means something
    same = table.loc[("condition", "same")]
    assert same["statement"] == NO_CHANGE and same["dropout_position"] == "below the smallest level"
    assert same["margin"] == 0.1  # as configured, whatever dropout does
    diversity = table.loc[("family", "diversity")]
    assert diversity["mean"] == pytest.approx((-0.6 + 0.0) / 2, abs=0.02) and diversity["n_seeds"] == 4
    assert np.isnan(diversity["dropout_level"])  # placement is per condition
    assert "weight_decay_level" not in table  # no weight-decay family measured


def test_numbers_are_scipy_t_tests_on_the_per_seed_log_changes():
    runs = _runs()
    row = curvature_effects(runs, MARGIN, fdr=False).set_index(["level", "name"]).loc[
        ("condition", "flat")]
    log = np.log10(runs.set_index(["condition", "seed"])["hessian_trace"])
    per_seed = (log["flat"] - log["baseline"]).to_numpy()
    expected = stats.ttest_1samp(per_seed, 0.0)
    assert row["mean"] == pytest.approx(per_seed.mean()) and row["p"] == pytest.approx(expected.pvalue)
    assert row["ci_low"] == pytest.approx(expected.confidence_interval(0.95).low)
    upper = stats.ttest_1samp(per_seed, row["margin"], alternative="less").pvalue
    lower = stats.ttest_1samp(per_seed, -row["margin"], alternative="greater").pvalue
    assert row["p_tost"] == pytest.approx(max(upper, lower))


def test_too_few_seeds_or_no_curvature_columns():
    assert (curvature_effects(_runs(n_seeds=2), MARGIN)["statement"] == UNDECIDED).all()
    negative = _runs(n_seeds=3)
    negative.loc[(negative["condition"] == "flat") & (negative["seed"] == 0), "hessian_trace"] = -5.0
    row = curvature_effects(negative, MARGIN).set_index(["level", "name"]).loc[("condition", "flat")]
    assert row["n_seeds"] == 2 and row["statement"] == UNDECIDED  # no log of a negative trace: one seed fewer
    assert curvature_effects(_runs().drop(columns=["hessian_trace_pretrained"]), MARGIN).empty


def test_summary_line_places_conditions_only_on_a_regularizer_that_moves_the_outcome():
    line = _curvature_line("hessian_trace", curvature_effects(_runs(), MARGIN))
    assert "Hessian trace" in line and "4 seeds" in line and "Equivalent strength: flat p = 0.3" in line, line
    assert "same p < 0.25" in line  # below the smallest level, with its confidence set's upper end
    runs = _runs()
    base = runs[runs["condition"] == "baseline"].set_index("seed")["hessian_trace"]
    drop = runs["family"] == "dropout"  # dropout leaves the trace where the baseline has it, +-0.1 % by seed
    runs.loc[drop, "hessian_trace"] = runs.loc[drop, "seed"].map(base) * (1 + 0.001 * (-1) ** runs.loc[drop, "seed"])
    flat_dropout = curvature_effects(runs, MARGIN)
    assert not flat_dropout["dropout_moves"].any()
    line = _curvature_line("hessian_trace", flat_dropout)
    assert "Equivalent strength" not in line and "No level of dropout is detected on it" in line, line
