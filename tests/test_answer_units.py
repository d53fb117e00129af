"""weightscape.answer building blocks against hand-computed values: the t-interval, TOST, Benjamini-Hochberg,
the isotonic fit, correlations with their intervals, margins, the pooled noise floor, the bootstrap weighting and
every branch of the verdict rule."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from sklearn.isotonic import IsotonicRegression

from weightscape.answer import VERDICT_RULE, settings
from weightscape.answer import claims as C
from weightscape.answer import dose as D
from weightscape.answer import seeds as SD
from weightscape.answer.verdict import NO_EFFECT, Facts, decide

X = np.array([0.1, 0.3, -0.2, 0.4, 0.05])


def t_cdf(t, df):
    """Student t CDF by the incomplete-beta formula (no scipy.stats)."""
    tail = 0.5 * special.betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


# ----------------------------------------------------------------------------------------------- tests across seeds
def test_t_summary_by_hand():
    n, mean, sd = len(X), X.mean(), X.std(ddof=1)
    se = sd / math.sqrt(n)
    q = stats.t.ppf(0.975, n - 1)
    s = SD.t_summary(X)
    assert s["mean"] == pytest.approx(mean) and s["sd"] == pytest.approx(sd)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((mean - q * se, mean + q * se))
    assert s["p"] == pytest.approx(2 * (1 - t_cdf(abs(mean / se), n - 1)))
    assert np.isnan(SD.t_summary([1.0])["ci_low"]) and np.isnan(SD.t_summary([2.0, 2.0])["p"])


def test_tost_by_hand():
    margin = 0.5
    n, mean, se = len(X), X.mean(), X.std(ddof=1) / math.sqrt(len(X))
    p_lower = 1 - t_cdf((mean + margin) / se, n - 1)  # H0: mu <= -margin
    p_upper = t_cdf((mean - margin) / se, n - 1)  # H0: mu >= +margin
    r = SD.tost(X, margin, alpha=0.05)
    assert r["p_lower"] == pytest.approx(p_lower) and r["p_upper"] == pytest.approx(p_upper)
    assert r["p_tost"] == pytest.approx(max(p_lower, p_upper))
    q = stats.t.ppf(0.95, n - 1)
    assert (r["ci90_low"], r["ci90_high"]) == pytest.approx((mean - q * se, mean + q * se))
    # equivalent exactly when the 90 % interval lies inside the margin
    assert r["equivalent"] == (-margin < r["ci90_low"] and r["ci90_high"] < margin) == (r["p_tost"] < 0.05)
    assert not SD.tost(X, 0.2)["equivalent"]
    assert not SD.tost(X[:1], 0.5)["equivalent"] and not SD.tost(X, np.nan)["equivalent"]


def test_benjamini_hochberg_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.06, 0.0533, 0.5 -> step-up minimum: 0.04, 0.0533, 0.0533, 0.5
    adj = SD.bh([0.01, 0.04, 0.03, np.nan, 0.5])
    assert adj[[0, 1, 2, 4]] == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert np.isnan(adj[3])


# ----------------------------------------------------------------------------------------------- monotone fit
@pytest.mark.parametrize("increasing", [True, False])
def test_pava_equals_sklearn_isotonic(increasing):
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.normal(size=6) + (1 if increasing else -1) * np.arange(6) * 0.3
        ref = IsotonicRegression(increasing=increasing).fit_transform(np.arange(6), y)
        assert D.pava(y, increasing) == pytest.approx(ref)


def test_monotone_picks_the_better_direction():
    fitted, up = D.monotone([3.0, 2.0, 2.5, 0.0])
    assert not up and fitted == pytest.approx([3.0, 2.25, 2.25, 0.0])
    assert D.monotone([0.0, 1.0, 0.5, 2.0])[1]


# ----------------------------------------------------------------------------------------------- correlations
def test_pearson_by_textbook_formula_and_fisher_interval():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([2.0, 1.0, 4.0, 3.0, 7.0, 5.0])
    dx, dy = x - x.mean(), y - y.mean()
    r = (dx * dy).sum() / math.sqrt((dx ** 2).sum() * (dy ** 2).sum())
    z, se = math.atanh(r), 1 / math.sqrt(len(x) - 3)
    out = C.correlation(x, y, n_boot=500, seed=0)
    assert out["pearson_r"] == pytest.approx(r)
    assert (out["pearson_ci_low"], out["pearson_ci_high"]) == pytest.approx(
        (math.tanh(z - 1.959964 * se), math.tanh(z + 1.959964 * se)), abs=1e-5)
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    assert out["spearman_rho"] == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    assert out["spearman_ci_low"] <= out["spearman_rho"] <= out["spearman_ci_high"]
    assert (out["spearman_ci_low"], out["spearman_ci_high"]) == C.spearman_ci(x, y, 500, 0)  # seeded
    assert np.isnan(C.correlation(x[:2], y[:2])["pearson_r"])
    assert np.isnan(C.correlation(x[:3], y[:3])["pearson_ci_low"])


# ----------------------------------------------------------------------------------------------- cube, noise, margins
def tiny_cube(per_seed_delta):
    """A cube with one layer and one metric; per_seed_delta = {condition: (family, [Delta per seed])}; relative =
    Delta minus the baseline's Delta of the same seed."""
    conds = list(per_seed_delta)
    delta = np.array([v[1] for v in per_seed_delta.values()], dtype=float)[:, :, None, None]
    rel = delta - delta[conds.index("baseline")]
    return SD.Cube(conds, {c: v[0] for c, v in per_seed_delta.items()}, list(range(delta.shape[1])), ["L"],
                   ["alpha"], rel, delta)


def test_pooled_noise_floor_by_hand():
    cube = tiny_cube({"baseline": ("baseline", [1.0, 2.0, 3.0]), "drop": ("dropout", [2.0, 2.0, 5.0])})
    n = SD.noise_floor(cube).iloc[0]
    assert n["noise_sd_baseline"] == pytest.approx(1.0)
    ss = (1 + 0 + 1) + (1 + 1 + 4)  # squared deviations from 2 and from 3
    assert n["noise_sd_pooled"] == pytest.approx(math.sqrt(ss / 4)) and n["df_pooled"] == 4
    assert SD.noise_floor(cube, "baseline").iloc[0]["noise_sd"] == pytest.approx(1.0)


def test_margin_rules():
    cube = tiny_cube({"baseline": ("baseline", [1.0, 2.0, 3.0]), "drop": ("dropout", [5.0, 6.0, 7.0])})
    noise = SD.noise_floor(cube)  # pooled SD 1, strongest regularizer effect |mean relative| = 4
    assert SD.margins(0.3, cube, noise)["margin"].iat[0] == 0.3
    assert SD.margins({"noise": 2.0}, cube, noise)["margin"].iat[0] == pytest.approx(2.0)
    assert SD.margins({"relative_to": "noise", "factor": 3}, cube, noise)["margin"].iat[0] == pytest.approx(3.0)
    assert SD.margins({"default": {"regularizers": 0.25, "noise": 0.5}}, cube, noise)["margin"].iat[0] == \
        pytest.approx(1.0)
    assert SD.margins({"default": 9, "alpha": {"regularizers": 0.5}}, cube, noise)["margin"].iat[0] == \
        pytest.approx(2.0)
    with pytest.raises(ValueError, match="keys are 'noise' and/or 'regularizers'"):
        SD.margins({"default": {"noize": 1}}, cube, noise)
    with pytest.raises(ValueError, match="unknown metric"):
        SD.margins({"default": 1, "alpah": 1}, cube, noise)


def test_bootstrap_weights_equal_an_explicit_resample():
    rng = np.random.default_rng(0)
    R = rng.normal(size=(3, 4, 5, 2))
    R[0, 1, 2, 0] = np.nan
    ok = np.isfinite(R)
    seeds, layers = np.array([0, 0, 3, 1]), np.array([4, 2, 2, 0, 1])
    w = np.bincount(layers, minlength=5).astype(float)
    v = np.bincount(seeds, minlength=4).astype(float)
    explicit = np.nanmean(np.nanmean(R[:, seeds][:, :, layers], axis=2), axis=1)
    assert D._estimate(R, ok, w, v) == pytest.approx(explicit)


def test_settings_reject_unknown_keys():
    assert settings({"claim1": {"score": "vendi_pixel"}})["claim1"]["min_conditions"] == 4
    with pytest.raises(ValueError, match=r"stats.claim1.scores: unknown key"):
        settings({"claim1": {"scores": "x"}})
    assert settings()["equivalence_margin"] == {"default": {"noise": 1.0, "regularizers": 0.25}}


# ----------------------------------------------------------------------------------------------- the rule
M = ("alpha", "log_norm")
BOTH = {"dropout": ("alpha",), "weight_decay": ("log_norm",)}


def facts(**kw):
    base = dict(n_seeds=5, metrics=M, moved=("alpha",), equivalent=(), measurable=BOTH, difference_ci=(0.5, 1.0),
                about={"dropout": "p = 0.31", "weight_decay": "lambda = 1.0e-03"})
    return Facts(**{**base, **kw})


@pytest.mark.parametrize("kw, verdict, reason", [
    (dict(n_seeds=2), "inconclusive", "fewer than 3 seeds (n = 2)"),
    (dict(equivalent=M, moved=()), NO_EFFECT, "equivalent to 0"),
    (dict(moved=(), equivalent=("alpha",)), "inconclusive",
     "no metric moves measurably, but equivalence within the margin is not shown on log norm"),
    (dict(measurable={"weight_decay": ("log_norm",)}), "inconclusive", "no dropout levels in the grid"),
    (dict(difference_ci=(np.nan, np.nan)), "inconclusive", "no confidence interval"),
    (dict(difference_ci=(-0.1, 0.4)), "inconclusive", "do not separate"),
    (dict(moved=("alpha", "log_norm")), "inconclusive", "nearer dropout, but dropout does not move log norm"),
    (dict(), "like dropout (about p = 0.31)", "nearer dropout"),
    (dict(moved=("log_norm",), difference_ci=(-1.0, -0.2)), "like weight decay (about lambda = 1.0e-03)",
     "nearer weight decay"),
])
def test_every_branch_of_the_rule(kw, verdict, reason):
    v, r = decide(facts(**kw))
    assert v == verdict and reason in r


def test_rule_text_is_the_function_docstring():
    assert VERDICT_RULE.startswith("The verdict of a data condition")
    assert "(7) Else" in VERDICT_RULE and "never beyond the measured levels" in VERDICT_RULE


def test_condition_levels_from_runs():
    runs = pd.DataFrame({"condition": ["dropout_0.1", "dropout_0.1", "autoaugment"], "level": [0.1, 0.1, np.nan]})
    assert D.condition_levels(runs).to_dict() == {"dropout_0.1": 0.1}
    with pytest.raises(ValueError, match="lacks column"):
        D.condition_levels(runs.drop(columns="level"))
