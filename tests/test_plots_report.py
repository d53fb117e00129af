"""Figures and summary.md on small hand-made tables (no dependence on results/)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pandas as pd
import pytest

from weightscape import answer_plots, plots, report
from weightscape.stats import outcome_tests

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAYERS = ["conv_stem", "blocks.0.conv", "blocks.1.conv", "classifier"]
CONDS = {"baseline": "baseline", "dropout_0.1": "dropout", "dropout_0.5": "dropout",
         "weight_decay_0.001": "weight_decay", "weight_decay_0.01": "weight_decay",
         "autoaugment": "diversity", "noise_0.05": "diversity"}
# per-family relative effect, chosen so dropout has by far the largest |effect| on every metric
EFFECT = {"baseline": 0.0, "dropout": -2.0, "weight_decay": -0.3, "diversity": -1.5}


def _check(out, caption, must):
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    txt = out.with_suffix(".txt").read_text()
    assert txt.strip() == caption.strip() and must in caption
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


@pytest.fixture(scope="module")
def deltas():
    rng = np.random.default_rng(0)
    rows = []
    for seed in (0, 1):
        for cond, fam in CONDS.items():
            for metric, scale in (("alpha", 1.0), ("log_norm", 0.1), ("entropy", 0.01)):
                for name in LAYERS:
                    rel = 0.0 if fam == "baseline" else EFFECT[fam] * scale + rng.normal(0, 0.01 * scale)
                    rows.append(dict(dataset="d", model="m", seed=seed, condition=cond, family=fam,
                                     longname=name, metric=metric, delta=rel, relative=rel))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def runs():
    rng = np.random.default_rng(1)
    acc = {"baseline": 0.80, "dropout": 0.82, "weight_decay": 0.79, "diversity": 0.90}
    rows = [dict(dataset="d", model="m", condition=c, family=f, level=0.0, seed=s,
                 id_accuracy=acc[f] + rng.normal(0, 0.005), id_ece=0.1 - (acc[f] - 0.8) / 2 + rng.normal(0, 0.003),
                 ood_accuracy=acc[f] - 0.1 + rng.normal(0, 0.005))
            for c, f in CONDS.items() for s in range(3)]
    return pd.DataFrame(rows)


def test_esd_overlay(tmp_path):
    rng = np.random.default_rng(0)
    arch = {}
    for label, scale in (("pretrained", 1.0), ("dropout_0.5", 1.5), ("weight_decay_0.001", 0.8)):
        p = tmp_path / f"{label}.npz"
        np.savez_compressed(p, **{n: rng.pareto(2.0, 300) * scale + 0.01 for n in LAYERS})
        arch[label] = p
    out = tmp_path / "figs" / "esd.png"
    out.parent.mkdir()
    cap = plots.esd_overlay(arch, ["conv_stem", "classifier", "missing"], out)
    _check(out, cap, "conv_stem")
    assert "classifier" in cap and "missing" not in cap and "pretrained" in cap


def test_family_bars(tmp_path, deltas):
    g = deltas[deltas.family != "baseline"].groupby(["family", "metric"]).relative
    eff = g.mean().rename("mean").reset_index()
    eff["ci_low"], eff["ci_high"] = eff["mean"] - 0.05, eff["mean"] + 0.05
    eff["longname"] = "__all__"
    extra = eff.assign(longname="conv_stem", mean=99.0)          # per-layer rows must be ignored
    out = tmp_path / "bars.png"
    cap = plots.family_bars(pd.concat([eff, extra]), out)
    _check(out, cap, "for alpha the largest mean effect is dropout")


def test_layer_lines(tmp_path, deltas):
    out = tmp_path / "lines.png"
    cap = plots.layer_lines(deltas, "alpha", out)
    _check(out, cap, "dropout has the largest mean effect")
    assert f"{len(LAYERS)} layers" in cap


def test_quadrant(tmp_path, deltas):
    out = tmp_path / "quad.png"
    cap = plots.quadrant(deltas, out)
    _check(out, cap, "nearest to the dropout centroid")
    assert f"{len(CONDS)} conditions" in cap


def test_outcome_bars(tmp_path, runs):
    out = tmp_path / "outcomes.png"
    cap = plots.outcome_bars(runs, out)
    _check(out, cap, "best family mean is diversity")


def test_accuracy_vs_vendi(tmp_path, runs):
    div = pd.DataFrame([dict(dataset="d", model="m", condition=c, family=f,
                             vendi_pixel=20.0 + (5 if f == "diversity" else 0) + i,
                             vendi_embedding=15.0 + (3 if f == "diversity" else 0) + i * 0.5)
                        for i, (c, f) in enumerate(CONDS.items())])
    out = tmp_path / "vendi.png"
    cap = plots.accuracy_vs_vendi(runs, div, out)
    _check(out, cap, "(diversity, accuracy")
    assert "vendi pixel: Pearson r" in cap and "vendi embedding" in cap


# ---------------------------------------------------------------------------------------------------------
def _tables(runs):
    distances = pd.DataFrame([
        # clearly closer to dropout: CIs separated
        dict(condition="autoaugment", metric="all", distance_dropout=0.10, ci_low_dropout=0.08,
             ci_high_dropout=0.12, distance_weight_decay=0.50,
             ci_low_weight_decay=0.45, ci_high_weight_decay=0.55, closer_to="dropout"),
        # nearer weight decay by point estimate, but CIs overlap -> inconclusive
        dict(condition="noise_0.05", metric="all", distance_dropout=0.30, ci_low_dropout=0.10,
             ci_high_dropout=0.50, distance_weight_decay=0.25,
             ci_low_weight_decay=0.05, ci_high_weight_decay=0.45,
             closer_to="weight_decay"),
        dict(condition="autoaugment", metric="alpha", distance_dropout=0.2, ci_low_dropout=0.1,
             ci_high_dropout=0.3, distance_weight_decay=0.9,
             ci_low_weight_decay=0.8, ci_high_weight_decay=1.0, closer_to="dropout"),
    ])
    tests = pd.DataFrame([
        dict(metric="alpha", F=12.5, p=0.00012, p_welch_diversity_vs_dropout=0.41,
             p_welch_diversity_vs_weight_decay=0.0031),
        dict(metric="log_norm", F=1.2, p=0.3127, p_welch_diversity_vs_dropout=0.77,
             p_welch_diversity_vs_weight_decay=0.2),
    ])
    effects = pd.DataFrame([dict(family=f, metric="alpha", longname="__all__", mean=m, ci_low=m - 0.1,
                                 ci_high=m + 0.1) for f, m in (("dropout", -1.0), ("weight_decay", 0.05),
                                                               ("diversity", -0.8))])
    return tests, distances, effects


def test_write_summary(tmp_path, runs):
    tests, distances, effects = _tables(runs)
    out = tmp_path / "results" / "summary.md"
    text = report.write_summary(tests=tests, distances=distances, effects=effects, outcomes=outcome_tests(runs),
                                out_md=out)
    assert out.read_text() == text
    lines = {l.split("**")[1]: l for l in text.splitlines() if l.startswith("- **") and "(all metrics)" in l}
    assert "closer to dropout" in lines["autoaugment"]
    assert "inconclusive" in lines["noise_0.05"] and "closer to" not in lines["noise_0.05"]
    assert "1 closer to dropout, 1 inconclusive" in text
    assert "- autoaugment, alpha: closer to dropout" in text
    # p-values, formatted
    assert "p = 1.2e-04 (the families differ)" in text
    assert "p = 0.313 (inconclusive)" in text
    assert "welch diversity vs dropout: p = 0.410 (inconclusive)" in text
    assert "welch diversity vs weight decay: p = 0.003 (differ)" in text
    # outcomes: diversity was built to beat baseline clearly
    acc = next(l for l in text.splitlines() if l.startswith("- **in-distribution accuracy**"))
    assert "diversity 0.9" in acc and "better than baseline" in acc
    assert "expected calibration error" in text and "out-of-distribution accuracy" in text


def test_summary_separation_and_missing_ci(tmp_path, runs):
    tests, _, effects = _tables(runs)
    nan = float("nan")
    distances = pd.DataFrame([
        dict(condition="augmix", metric="all", distance_dropout=0.2, ci_low_dropout=0.1, ci_high_dropout=0.31,
             distance_weight_decay=0.4, ci_low_weight_decay=0.3, ci_high_weight_decay=0.5, closer_to="dropout"),
        dict(condition="auto1", metric="all", distance_dropout=0.4, ci_low_dropout=0.35, ci_high_dropout=0.45,
             distance_weight_decay=0.1, ci_low_weight_decay=0.05, ci_high_weight_decay=0.15,
             closer_to="weight_decay"),
        dict(condition="auto2", metric="all", distance_dropout=0.1, ci_low_dropout=nan, ci_high_dropout=nan,
             distance_weight_decay=0.3, ci_low_weight_decay=nan, ci_high_weight_decay=nan, closer_to="dropout"),
    ])
    text = report.write_summary(tests=tests, distances=distances, effects=effects, outcomes=outcome_tests(runs),
                                out_md=tmp_path / "s.md")
    lines = {l.split("**")[1]: l for l in text.splitlines() if l.startswith("- **") and "(all metrics)" in l}
    assert "inconclusive (confidence intervals overlap)" in lines["augmix"]  # 0.31 > 0.30: they touch
    assert "closer to weight decay" in lines["auto1"]
    assert "inconclusive (no confidence intervals)" in lines["auto2"]


def test_summary_reads_class_consistency_against_the_judge(tmp_path, runs):
    tests, distances, effects = _tables(runs)
    fidelity = pd.DataFrame([dict(generator="ddpm", dataset="fashion_mnist", n_synthetic=500, class_consistency=0.888,
                                  judge_real_test_accuracy=0.893, judge_n_train=10000, backbone="efficientnet_lite0",
                                  fd_efficientnet_lite0=451.2, fd_efficientnet_lite0_real_train_vs_test=248.3,
                                  vendi_embedding_synthetic=13.79, vendi_embedding_real=15.89,
                                  vendi_pixel_synthetic=24.9, vendi_pixel_real=26.91)])
    text = report.write_summary(tests=tests, distances=distances, effects=effects, outcomes=outcome_tests(runs),
                                out_md=tmp_path / "s.md", fidelity=fidelity)
    line = next(l for l in text.splitlines() if l.startswith("- **ddpm**"))
    assert ("class consistency 0.888 (the judge's accuracy on real test images: 0.893, trained on 10000 real "
            "images)") in line
    assert "FD in efficientnet_lite0 features 451 (real train vs real test: 248)" in line
    assert "embedding Vendi 13.8 vs real 15.9" in line


def test_fmt_p():
    assert report.fmt_p(0.04999) == "0.050" and report.fmt_p(2.5e-6) == "2.5e-06" and report.fmt_p(np.nan) == "n/a"


def test_dose_response_draws_a_condition_only_where_it_is_placed(tmp_path):
    rows = []
    for family, levels in (("dropout", (0.1, 0.3, 0.5)), ("weight_decay", (1e-4, 1e-3))):
        for level in levels:
            x = np.log10(level) if family == "weight_decay" else level
            for metric in ("alpha", "log_norm"):
                effect = -level if family == "dropout" else -0.01 * (4 + x)
                rows.append(dict(family=family, metric=metric, condition=f"{family}_{level:g}", level=level, x=x,
                                 axis="log10" if family == "weight_decay" else "linear", n_seeds=3, effect=effect,
                                 ci_low=effect - 0.01, ci_high=effect + 0.01, ci_level=0.98,
                                 moves=not (family == "dropout" and metric == "log_norm")))
    curves = pd.DataFrame(rows)
    placement = pd.DataFrame([
        dict(condition="autoaugment", regularizer="dropout", level=0.3, position="within the measured levels",
             level_ci_low=0.2, level_ci_high=0.4, text="p = 0.30 (0.20 to 0.40)"),
        dict(condition="autoaugment", regularizer="weight_decay", level=np.nan,
             position="below the smallest level", level_ci_low=0.0, level_ci_high=1e-4, text="lambda < 1.0e-04"),
        dict(condition="augmix", regularizer="dropout", level=0.3, position="within the measured levels",
             level_ci_low=0.0, level_ci_high=np.inf, text="compatible with every level"),
        dict(condition="augmix", regularizer="weight_decay", level=np.nan, position="off the curve",
             level_ci_low=np.nan, level_ci_high=np.nan, text="off the curve")])
    effects = pd.DataFrame([dict(condition=c, metric=m, mean=-0.3, ci_low=-0.35, ci_high=-0.25)
                            for c in ("autoaugment", "augmix") for m in ("alpha", "log_norm")])
    out = tmp_path / "dose_response.png"
    caption = answer_plots.dose_response(curves, placement, effects, out)
    _check(out, caption, "autoaugment on dropout (W): p = 0.30 (0.20 to 0.40)")
    assert "autoaugment on weight decay (W): lambda < 1.0e-04" in caption and "augmix" not in caption
    assert "across 3 seeds with 98% intervals" in caption
    empty = answer_plots.dose_response(curves.iloc[:0], placement.iloc[:0], effects.iloc[:0], tmp_path / "none.png")
    assert "no dropout or weight-decay levels" in empty


def test_curvature_figure_reads_the_runs_hessian_columns(tmp_path, runs):
    rng = np.random.default_rng(3)
    table = runs.assign(hessian_trace=rng.uniform(10, 20, len(runs)), hessian_top_eig=rng.uniform(1, 2, len(runs)),
                        hessian_trace_pretrained=5.0, hessian_top_eig_pretrained=0.5)
    out = tmp_path / "curvature.png"
    caption = plots.curvature(table, out)
    _check(out, caption, "hessian trace: pretrained 5")
    assert "lower is flatter" in caption and "across 3-3 seed(s)" in caption
    with pytest.raises(ValueError, match="curvature.enabled"):
        plots.curvature(runs, tmp_path / "none.png")


def test_curvature_trajectory_follows_the_trace_per_family(tmp_path):
    rows = [dict(condition=c, family=f, seed=s, epoch=e, hessian_trace=(10.0 if f == "dropout" else 20.0) * e)
            for c, f in (("dropout_0.5", "dropout"), ("autoaugment", "diversity")) for s in (0, 1) for e in (1, 2, 3)]
    out = tmp_path / "trajectory.png"
    caption = plots.curvature_trajectory(pd.DataFrame(rows), out)
    _check(out, caption, "after each of 3 epochs")
    assert "dropout 30" in caption and "diversity 60" in caption
