"""Loss curvature across seeds (weightscape.answer.runlevel) on constructed runs tables."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from weightscape.answer.runlevel import FLATTER, NO_CHANGE, UNDECIDED, curvature_effects

MARGIN = {"default": {"noise": 1.0, "regularizers": 0.25}}


def _runs(n_seeds=4, flat=-0.5, same=0.0, noise=0.01):
    """log10 curvature: pretrained 3 (per seed), baseline +0.5 (+ seed noise); 'flat' and 'same' relative to it."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(n_seeds):
        base = 0.5 + rng.normal(0, 0.2)  # the seed's own baseline change: cancels in the relative effect
        for condition, family, shift in (("baseline", "baseline", 0.0), ("dropout_0.5", "dropout", -1.0),
                                         ("flat", "diversity", flat), ("same", "diversity", same)):
            value = 3 + base + shift + (rng.normal(0, noise) if condition != "baseline" else 0.0)
            rows.append(dict(dataset="d", model="m", condition=condition, family=family, seed=seed,
                             hessian_trace=10 ** value, hessian_trace_pretrained=1e3))
    return pd.DataFrame(rows)


def test_a_planted_flatter_condition_is_flatter_and_an_unchanged_one_equivalent():
    table = curvature_effects(_runs(), MARGIN).set_index(["level", "name"])
    flat = table.loc[("condition", "flat")]
    assert flat["statement"] == FLATTER and flat["mean"] == pytest.approx(-0.5, abs=0.02)
    assert table.loc[("condition", "same"), "statement"] == NO_CHANGE
    # the margin: the larger of the baseline's seed SD of its change and a quarter of dropout's effect (1.0)
    assert table.loc[("condition", "same"), "margin"] >= 0.25
    diversity = table.loc[("family", "diversity")]
    assert diversity["mean"] == pytest.approx((-0.5 + 0.0) / 2, abs=0.02) and diversity["n_seeds"] == 4


def test_numbers_are_scipy_t_tests_on_the_per_seed_log_changes():
    runs = _runs()
    row = curvature_effects(runs, MARGIN, fdr=False).set_index(["level", "name"]).loc[("condition", "flat")]
    log = np.log10(runs.set_index(["condition", "seed"])["hessian_trace"])
    per_seed = (log["flat"] - log["baseline"]).to_numpy()
    expected = stats.ttest_1samp(per_seed, 0.0)
    assert row["mean"] == pytest.approx(per_seed.mean()) and row["p"] == pytest.approx(expected.pvalue)
    assert row["ci_low"] == pytest.approx(expected.confidence_interval(0.95).low)


def test_too_few_seeds_or_no_curvature_columns():
    assert (curvature_effects(_runs(n_seeds=2), MARGIN)["statement"] == UNDECIDED).all()
    assert curvature_effects(_runs().drop(columns=["hessian_trace_pretrained"]), MARGIN).empty
