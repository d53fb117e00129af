"""weightscape.answer building blocks against hand-computed values: the t-interval, TOST, Benjamini-Hochberg and
the intervals that agree with it, the moderated t and its prior, margins, the paired noise, the placement text and
every branch of the verdict rule."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from weightscape.answer import dose as D
from weightscape.answer import inference as I
from weightscape.answer import seeds as SD
from weightscape.answer import settings
from weightscape.answer.seeds import BEYOND_MARGIN, DETECTED, DETECTED_SMALL, UNDECIDED, WITHIN_MARGIN
from weightscape.answer.verdict import INCONCLUSIVE, LIKE, NO_EFFECT, SMALL, Facts, decide

X = np.array([0.1, 0.3, -0.2, 0.4, 0.05])


def t_cdf(t, df):
    """Student t CDF by the incomplete-beta formula (no scipy.stats)."""
    tail = 0.5 * special.betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


# ----------------------------------------------------------------------------------------------- plain tests
def test_t_summary_by_hand():
    n, mean, sd = len(X), X.mean(), X.std(ddof=1)
    se = sd / math.sqrt(n)
    q = stats.t.ppf(0.975, n - 1)
    s = I.t_summary(X)
    assert s["mean"] == pytest.approx(mean) and s["sd"] == pytest.approx(sd) and s["d_z"] == pytest.approx(mean / sd)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((mean - q * se, mean + q * se))
    assert s["p"] == pytest.approx(2 * (1 - t_cdf(abs(mean / se), n - 1)))
    assert np.isnan(I.t_summary([1.0])["ci_low"]) and np.isnan(I.t_summary([2.0, 2.0])["p"])


def test_tost_by_hand():
    margin = 0.5
    n, mean, se = len(X), X.mean(), X.std(ddof=1) / math.sqrt(len(X))
    p_lower = 1 - t_cdf((mean + margin) / se, n - 1)  # H0: mu <= -margin
    p_upper = t_cdf((mean - margin) / se, n - 1)  # H0: mu >= +margin
    r = I.tost(X, margin, alpha=0.05)
    assert r["p_lower"] == pytest.approx(p_lower) and r["p_upper"] == pytest.approx(p_upper)
    assert r["p_tost"] == pytest.approx(max(p_lower, p_upper))
    q = stats.t.ppf(0.95, n - 1)
    assert (r["ci90_low"], r["ci90_high"]) == pytest.approx((mean - q * se, mean + q * se))
    assert r["equivalent"] == (-margin < r["ci90_low"] and r["ci90_high"] < margin) == (r["p_tost"] < 0.05)
    assert not I.tost(X, 0.2)["equivalent"]
    assert not I.tost(X[:1], 0.5)["equivalent"] and not I.tost(X, np.nan)["equivalent"]


def test_benjamini_hochberg_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.06, 0.0533, 0.5 -> step-up minimum: 0.04, 0.0533, 0.0533, 0.5
    adj = I.bh([0.01, 0.04, 0.03, np.nan, 0.5])
    assert adj[[0, 1, 2, 4]] == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert np.isnan(adj[3])


def test_selection_level_intervals_agree_with_the_bh_decisions_row_by_row():
    rng = np.random.default_rng(4)
    samples = [rng.normal(mu, 1.0, 3) for mu in np.r_[np.zeros(20), np.linspace(1, 6, 20)]]
    p = np.array([stats.ttest_1samp(x, 0).pvalue for x in samples])
    selected = I.bh(p) < 0.05
    level = I.selection_level(p, 0.05, fdr=True)
    assert 0.95 < level < 1 and 0 < selected.sum() < len(p)
    excludes = np.array([not (lo <= 0 <= hi) for lo, hi in (I.interval(x, level) for x in samples)])
    assert np.array_equal(excludes, selected)  # an interval excludes 0 exactly when its row is detected
    assert I.selection_level(p, 0.05, fdr=False) == pytest.approx(0.95)
    assert I.selection_level(p, 0.05, fdr=False, two_sided=False) == pytest.approx(0.90)


# ----------------------------------------------------------------------------------------------- moderated t
def test_moderated_t_by_hand():
    prior = I.Prior(df=4.0, var=0.09)
    x = np.array([0.5, 0.1, 0.3])
    s2, d = x.var(ddof=1), 2
    var = (4 * 0.09 + d * s2) / (4 + d)
    assert var >= s2  # this row's own variance is below the prior's pull, so it is moderated
    se = math.sqrt(var / 3)
    r = I.moderated_tests(x, prior, margin=0.6)
    assert r["df"] == 6 and r["se"] == pytest.approx(se) and r["t"] == pytest.approx(x.mean() / se)
    assert r["p"] == pytest.approx(2 * (1 - t_cdf(x.mean() / se, 6)))
    q = stats.t.ppf(0.975, 6) * se
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((x.mean() - q, x.mean() + q))
    p_tost = max(1 - t_cdf((x.mean() + 0.6) / se, 6), t_cdf((x.mean() - 0.6) / se, 6))
    assert r["p_tost"] == pytest.approx(p_tost)
    # a row noisier than the prior keeps its own variance and its own n - 1 degrees of freedom
    noisy = np.array([3.0, -2.0, 1.0])
    r = I.moderated_tests(noisy, prior)
    assert r["df"] == 2 and r["se"] == pytest.approx(noisy.std(ddof=1) / math.sqrt(3))
    # without a prior: the plain one-sample t-test
    assert I.moderated_tests(X, I.Prior())["p"] == pytest.approx(stats.ttest_1samp(X, 0).pvalue)
    # a scale multiplies the prior variance (a curve point between two levels: 3/4 of an effect's)
    r = I.moderated_tests(x, prior, scale=0.75)
    assert r["se"] == pytest.approx(math.sqrt(max((4 * 0.75 * 0.09 + d * s2) / 6, s2) / 3))


def test_variance_prior_recovers_a_known_scaled_inverse_chi_square():
    rng = np.random.default_rng(0)
    d0, s0 = 10.0, 0.5
    true_var = d0 * s0 ** 2 / rng.chisquare(d0, 4000)  # each row's own variance, drawn from the prior
    s2 = true_var * rng.chisquare(2, 4000) / 2  # its sample variance with 2 df (3 seeds)
    prior = I.variance_prior(s2, 2)
    assert prior.df == pytest.approx(d0, rel=0.25) and math.sqrt(prior.var) == pytest.approx(s0, rel=0.1)
    # equal variances: d0 reaches its cap, the pooled degrees of freedom
    same = I.variance_prior(rng.chisquare(2, 50) / 2, 2)
    assert same.df == 100 and math.sqrt(same.var) == pytest.approx(1.0, rel=0.2)
    assert I.variance_prior([0.1, 0.2], 2).df == 0  # too few rows: no prior


def test_moderated_intervals_cover_at_three_seeds_under_heterogeneous_noise():
    """98 % of conditions share one noise, 2 % have 5x it (weight decay 5e-3 on alpha, 4.6x); 3 seeds: intervals
    cover >= 94 % overall and >= 90 % for the noisy rows, which the prior of the others must not shrink."""
    rng = np.random.default_rng(1)
    sd = np.where(np.arange(200) % 50 == 0, 5.0, 1.0)
    covered = []
    for _ in range(150):
        x = rng.normal(0, sd[:, None], (200, 3))
        prior = I.variance_prior(x.var(axis=1, ddof=1), 2)
        r = I.moderated_tests(x, prior)
        covered.append((r["ci_low"] <= 0) & (0 <= r["ci_high"]))
    covered = np.array(covered)
    assert covered.mean() >= 0.94 and covered[:, sd == 5.0].mean() >= 0.90


# ----------------------------------------------------------------------------------------------- cube, noise, margins
def tiny_cube(per_seed_delta, value=10.0):
    """A cube with one layer and one metric; per_seed_delta = {condition: (family, [Delta per seed])}; relative =
    Delta minus the baseline's Delta of the same seed; every run's own value `value`."""
    conds = list(per_seed_delta)
    delta = np.array([v[1] for v in per_seed_delta.values()], dtype=float)[:, :, None, None]
    rel = delta - delta[conds.index("baseline")]
    return SD.Cube(conds, {c: v[0] for c, v in per_seed_delta.items()}, list(range(delta.shape[1])), ["L"],
                   ["alpha"], rel, delta, np.full(delta.shape, value))


def test_paired_noise_by_hand():
    cube = tiny_cube({"baseline": ("baseline", [1.0, 2.0, 3.0]), "drop": ("dropout", [2.0, 2.0, 5.0]),
                      "wd": ("weight_decay", [1.0, 3.0, 3.0])})
    n = SD.noise_table(cube).iloc[0]
    # paired effects: drop (1, 0, 2), wd (0, 1, 0): squared deviations 2 and 2/3 over 4 df
    assert n["noise_sd"] == pytest.approx(math.sqrt((2 + 2 / 3) / 4)) and n["df"] == 4
    # unpaired: Delta of drop (2, 2, 5) and wd (1, 3, 3): 6 and 8/3 over 4 df
    assert n["noise_sd_unpaired"] == pytest.approx(math.sqrt((6 + 8 / 3) / 4))
    assert n["baseline_change"] == pytest.approx(2.0) and n["baseline_value"] == pytest.approx(10.0)


def test_margin_rules_are_fixed_before_the_effects():
    noise = pd.DataFrame({"metric": ["alpha", "log_norm"], "baseline_value": [3.0, 2.0]})
    m = SD.margins({"relative": 0.05}, noise).set_index("metric")["margin"]
    assert m["alpha"] == pytest.approx(0.15) and m["log_norm"] == pytest.approx(math.log10(1.05))
    m = SD.margins({"default": {"relative": 0.1}, "alpha": 0.3}, noise, scale=2).set_index("metric")["margin"]
    assert m["alpha"] == pytest.approx(0.6) and m["log_norm"] == pytest.approx(2 * math.log10(1.1))
    assert SD.margins({"default": {"absolute": 0.2}, "hessian_trace": 1}, noise)["margin"].tolist() == [0.2, 0.2]
    with pytest.raises(ValueError, match=r"stats.equivalence_margin.alpha: .* is not a margin rule"):
        SD.margins({"default": {"noise": 1}}, noise)
    with pytest.raises(ValueError, match="no rule for metric log_norm"):
        SD.margins({"alpha": 0.1}, noise)


def test_settings_defaults_and_unknown_keys():
    assert settings({"claim1": {"score": "vendi_pixel"}})["claim1"]["min_conditions"] == 4
    with pytest.raises(ValueError, match=r"stats.claim1.scores: unknown key"):
        settings({"claim1": {"scores": "x"}})
    assert settings()["equivalence_margin"] == {"default": {"relative": 0.05}}
    with pytest.raises(ValueError, match="stats.equivalence_margin"):
        settings({"equivalence_margin": {"default": {"regularizers": 0.25}}})


def test_states_of_an_effect():
    assert SD.state(True, False, True) == BEYOND_MARGIN and SD.state(True, False, False) == DETECTED
    assert SD.state(True, True, False) == DETECTED_SMALL and SD.state(False, True, False) == WITHIN_MARGIN
    assert SD.state(False, False, False) == UNDECIDED


# ----------------------------------------------------------------------------------------------- placement text
@pytest.mark.parametrize("args, text", [
    (("dropout", D.WITHIN, 0.42, 0.3, 0.55), "p = 0.42 (0.30 to 0.55)"),
    (("dropout", D.BELOW, np.nan, 0.0, 0.3), "p < 0.30"),
    (("weight_decay", D.AT_END, 5e-3, 1e-3, np.inf), "lambda >= 1.0e-03"),
    (("dropout", D.WITHIN, 0.4, 0.0, np.inf), "compatible with every level"),
    (("dropout", D.OFF_CURVE, np.nan, np.nan, np.nan), "off the curve"),
    (("dropout", D.BEYOND, np.nan, 0.7, np.inf), "beyond the largest level (p > 0.70)"),
])
def test_a_level_is_a_point_only_when_its_interval_is_bounded(args, text):
    assert D.placement_text(*args) == text


def test_condition_levels_from_runs():
    runs = pd.DataFrame({"condition": ["dropout_0.1", "dropout_0.1", "autoaugment"], "level": [0.1, 0.1, np.nan]})
    assert D.condition_levels(runs).to_dict() == {"dropout_0.1": 0.1}
    with pytest.raises(ValueError, match="lacks column"):
        D.condition_levels(runs.drop(columns="level"))


# ----------------------------------------------------------------------------------------------- the rule
M = ("alpha", "log_norm")
BOTH = ("dropout", "weight_decay")


def facts(**kw):
    base = dict(n_seeds=3, states={"alpha": BEYOND_MARGIN, "log_norm": WITHIN_MARGIN}, present=BOTH,
                on_curve={"dropout": True, "weight_decay": False}, off_curve={"dropout": False, "weight_decay": True},
                text={"dropout": "p = 0.31 (0.2 to 0.4)", "weight_decay": "off the curve"})
    return Facts(**{**base, **kw})


@pytest.mark.parametrize("kw, verdict, reason", [
    (dict(n_seeds=2), INCONCLUSIVE, "fewer than 3 seeds (n = 2)"),
    (dict(states={"alpha": WITHIN_MARGIN, "log_norm": WITHIN_MARGIN}), NO_EFFECT, "none detected; within the margin"),
    (dict(states={"alpha": DETECTED_SMALL, "log_norm": WITHIN_MARGIN}), SMALL, "detected on alpha; within the margin"),
    (dict(states={"alpha": DETECTED, "log_norm": WITHIN_MARGIN}), INCONCLUSIVE,
     "detected on alpha, but not shown to exceed the margin"),
    (dict(states={"alpha": UNDECIDED, "log_norm": WITHIN_MARGIN}), INCONCLUSIVE,
     "none detected, and within the margin not shown on alpha"),
    (dict(present=("weight_decay",)), INCONCLUSIVE, "no dropout levels in the grid"),
    (dict(), LIKE["dropout"], "on the dropout curve (p = 0.31 (0.2 to 0.4)); every point of the weight decay curve"),
    (dict(on_curve={"dropout": False, "weight_decay": True}, off_curve={"dropout": True, "weight_decay": False}),
     LIKE["weight_decay"], "every point of the dropout curve rejected"),
    (dict(off_curve={"dropout": False, "weight_decay": False}), INCONCLUSIVE,
     "on the dropout curve, but the weight decay curve is not rejected everywhere"),
    (dict(on_curve={"dropout": True, "weight_decay": True}), INCONCLUSIVE, "equivalent within the margin to points "
                                                                           "of both curves"),
    (dict(on_curve={}, off_curve={"dropout": True, "weight_decay": True}), INCONCLUSIVE, "off both curves"),
    (dict(on_curve={}, off_curve={}), INCONCLUSIVE, "not shown equivalent to either curve"),
])
def test_every_branch_of_the_rule(kw, verdict, reason):
    v, r = decide(facts(**kw))
    assert v == verdict and reason in r, (v, r)


def test_the_summary_rests_on_the_lens_that_decides_most_and_never_on_a_contradicted_within_the_margin():
    from weightscape.answer.overview import resting_lens

    small, none = "detected, within the margin", "no measurable effect"
    # the update moves log norm beyond the margin, undecided: W's "within the margin" is not the headline
    assert resting_lens({"W": (small, ""), "delta": ("inconclusive", "log_norm")}) == "delta"
    assert resting_lens({"W": (small, ""), "delta": ("inconclusive", "")}) == "W"
    assert resting_lens({"W": ("like weight decay", "log_norm"), "delta": ("inconclusive", "log_norm")}) == "W"
    assert resting_lens({"W": (none, ""), "delta": (small, "")}) == "delta"  # a tie: the update's lens
    assert resting_lens({"W": ("inconclusive", float("nan")), "delta": ("inconclusive", "")}) == "delta"
