"""Figures of the family comparison, drawn from tables only (numpy/pandas/matplotlib/seaborn; no torch).

Every function takes DataFrames (or eigenvalue archives) and an output PNG path, writes the PNG atomically
(temp file in the same folder, then ``os.replace``) plus a caption ``<name>.txt`` next to it -- one paragraph
generated from the plotted numbers -- and returns the caption.

    esd_overlay({label: npz path}, layers, out)       log-log ESDs, pretrained vs one run per family
    family_bars(effects, out)                         family mean relative effect per metric, CI bars
    layer_lines(deltas, metric, out)                  per-layer relative effect per family
    quadrant(deltas, out)                             (mean rel. d log_norm, mean rel. d alpha) per condition
    outcome_bars(runs, out)                           id_accuracy / id_ece / ood_accuracy per condition
    accuracy_vs_vendi(runs, diversity, out)           ID accuracy vs Vendi score per condition
    curvature(runs, out)                              Hessian trace / top eigenvalue per condition (curvature on)
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

from .io import atomic_path  # noqa: E402  (stdlib only)
from .names import (ALL_LAYERS, BASELINE, COMBINED, CURVATURE_OUTCOMES, DIVERSITY, DROPOUT, FAMILIES,  # noqa: E402
                    LOWER_IS_BETTER, OUTCOMES, PRETRAINED, SYNTHETIC, VENDI_SCORES, WEIGHT_DECAY, nice)

# column names of the tables weightscape.stats / weightscape.tables write
CONDITION, METRIC, LONGNAME, SEED, LEVEL, FAMILY = "condition", "metric", "longname", "seed", "level", "family"
RELATIVE = "relative"                                   # deltas: delta(condition) - delta(baseline)
MEAN, CI_LOW, CI_HIGH = "mean", "ci_low", "ci_high"     # family_effects
QUADRANT_X, QUADRANT_Y = "log_norm", "alpha"
PALETTE = {BASELINE: "#7f7f7f", DROPOUT: "#0173b2", WEIGHT_DECAY: "#029e73", DIVERSITY: "#d55e00",
           SYNTHETIC: "#cc78bc", COMBINED: "#ca9161"}


def t_interval(values) -> tuple[float, float]:
    """The 95 % t-interval of the mean (scipy.stats), for seaborn's errorbar: over 3 seeds a percentile bootstrap
    has 27 resamples and covers about 74 %, not 95 %. A single value: the point."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2 or x.std() == 0:
        return (float(x.mean()), float(x.mean())) if len(x) else (np.nan, np.nan)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(low), float(high)


def _palette(families) -> dict:
    extra = [f for f in families if f not in PALETTE]
    pal = dict(PALETTE)
    pal.update(zip(extra, sns.color_palette("Set2", max(len(extra), 1))))
    return {f: pal[f] for f in families}


def _family_order(values) -> list[str]:
    present = list(dict.fromkeys(values))
    return [f for f in FAMILIES if f in present] + [f for f in present if f not in FAMILIES]


def _condition_order(frame: pd.DataFrame) -> list[str]:
    """Conditions grouped by family (FAMILIES order), then by level, then by name."""
    cols = [CONDITION, FAMILY] + ([LEVEL] if LEVEL in frame else [])
    cond = frame[cols].drop_duplicates(CONDITION).copy()
    rank = {f: i for i, f in enumerate(_family_order(cond[FAMILY]))}
    cond["_r"] = cond[FAMILY].map(rank)
    keys = ["_r"] + ([LEVEL] if LEVEL in cond else []) + [CONDITION]
    return cond.sort_values(keys, na_position="last")[CONDITION].tolist()


def _save(fig, out, caption: str) -> str:
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with atomic_path(out.with_suffix(".txt")) as tmp:
        tmp.write_text(caption.strip() + "\n")
    return caption


def _f(x: float) -> str:
    return f"{x:.3g}"


# ---------------------------------------------------------------------------------------------------------
def esd_overlay(eigen_archives: dict, layers: list[str], out) -> str:
    """Log-log ESD histograms of ``layers``, one panel per layer, one line per archive label
    (e.g. ``{"pretrained": ..., "dropout_0.5": ..., ...}``). Archives are read with numpy directly
    (same format as ``weightscape.spectra.esd.save_eigenvalues``)."""
    spectra = {}
    for label, path in eigen_archives.items():
        with np.load(Path(path), allow_pickle=False) as archive:
            spectra[label] = {k: archive[k] for k in layers if k in archive.files}
    layers = [l for l in layers if any(l in s for s in spectra.values())]
    if not layers:
        raise ValueError("none of the requested layers is in the eigenvalue archives")
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.6), squeeze=False)
    colors = sns.color_palette("colorblind", len(spectra))
    notes = []
    for ax, layer in zip(axes[0], layers):
        vals = {lab: np.asarray(s[layer], float) for lab, s in spectra.items() if layer in s}
        vals = {lab: v[v > 0] for lab, v in vals.items() if np.any(v > 0)}
        lo = min(v.min() for v in vals.values())
        hi = max(v.max() for v in vals.values())
        bins = np.logspace(np.log10(lo), np.log10(hi) + 1e-9, 40)
        for (lab, v), c in zip(vals.items(), colors):
            dens, edges = np.histogram(v, bins=bins, density=True)
            centers = np.sqrt(edges[:-1] * edges[1:])
            keep = dens > 0
            ax.plot(centers[keep], dens[keep], drawstyle="steps-mid", color=c, label=lab,
                    lw=2.2 if lab == PRETRAINED else 1.3, ls="--" if lab == PRETRAINED else "-")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel("eigenvalue")
        lmax = {lab: v.max() for lab, v in vals.items()}
        top = max(lmax, key=lmax.get)
        ref = lmax.get(PRETRAINED)
        shift = "" if ref is None else (
            f", {max((l for l in lmax if l != PRETRAINED), key=lambda l: abs(np.log(lmax[l] / ref)), default=top)}"
            f" moved it furthest from the pretrained {_f(ref)}")
        notes.append(f"in {layer} the largest eigenvalue is {_f(lmax[top])} ({top}){shift}")
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(fontsize=7)
    caption = (f"Empirical spectral densities (log-log histograms of the weight-matrix eigenvalues) of "
               f"{len(layers)} layer(s) for {', '.join(spectra)}; " + "; ".join(notes) + ".")
    return _save(fig, out, caption)


# ---------------------------------------------------------------------------------------------------------
def family_bars(effects: pd.DataFrame, out) -> str:
    """Family mean relative effect per metric (all-layer rows when ``longname`` is present), CI error bars."""
    eff = effects
    if LONGNAME in eff:
        eff = eff[eff[LONGNAME] == ALL_LAYERS]
    eff = eff[eff[FAMILY] != BASELINE]
    if eff.empty:
        raise ValueError("no family effects to plot")
    metrics = list(dict.fromkeys(eff[METRIC]))
    fams = _family_order(eff[FAMILY])
    pal = _palette(fams)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), squeeze=False)
    notes = []
    for ax, metric in zip(axes[0], metrics):
        sub = eff[eff[METRIC] == metric].set_index(FAMILY).reindex([f for f in fams if f in set(eff[FAMILY])])
        sub = sub.dropna(subset=[MEAN])
        x = np.arange(len(sub))
        err = np.vstack([sub[MEAN] - sub[CI_LOW], sub[CI_HIGH] - sub[MEAN]]) if CI_LOW in sub else None
        ax.bar(x, sub[MEAN], yerr=err, capsize=4, color=[pal[f] for f in sub.index])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, [nice(f) for f in sub.index], rotation=30, ha="right")
        ax.set_title(metric)
        top = sub[MEAN].abs().idxmax()
        row = sub.loc[top]
        excl = CI_LOW in sub and (row[CI_LOW] > 0 or row[CI_HIGH] < 0)
        ci = f" [95% CI {_f(row[CI_LOW])}, {_f(row[CI_HIGH])}]" if CI_LOW in sub else ""
        notes.append(f"for {metric} the largest mean effect is {nice(top)} ({_f(row[MEAN])}{ci}, "
                     f"{'CI excludes 0' if excl else 'CI includes 0'})")
    axes[0][0].set_ylabel("relative effect (vs baseline)")
    caption = ("Mean relative effect of each regularization family on the spectral metrics (change from "
               "pretrained minus the baseline run's change, averaged over layers), with 95% confidence "
               "intervals; " + "; ".join(notes) + ".")
    return _save(fig, out, caption)


# ---------------------------------------------------------------------------------------------------------
def layer_lines(deltas: pd.DataFrame, metric: str, out) -> str:
    """Per-layer relative effect of ``metric`` (x = layer order of first appearance) per family."""
    d = deltas[(deltas[METRIC] == metric) & (deltas[FAMILY] != BASELINE)].dropna(subset=[RELATIVE])
    if d.empty:
        raise ValueError(f"no relative effects for metric {metric!r}")
    order = list(dict.fromkeys(d[LONGNAME]))
    d = d.assign(layer=d[LONGNAME].map({n: i for i, n in enumerate(order)}))
    fams = _family_order(d[FAMILY])
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(order)), 3.8))
    sns.lineplot(d, x="layer", y=RELATIVE, hue=FAMILY, hue_order=fams, palette=_palette(fams), ax=ax,
                 errorbar=t_interval, marker="o", markersize=3)
    ax.axhline(0, color="k", lw=0.8)
    step = max(1, len(order) // 25)
    ax.set_xticks(range(0, len(order), step), [order[i] for i in range(0, len(order), step)],
                  rotation=90, fontsize=6)
    ax.set_xlabel("layer")
    ax.set_ylabel(f"relative Δ {metric}")
    per = d.groupby([FAMILY, "layer"])[RELATIVE].mean().reset_index()
    fam_mean = per.groupby(FAMILY)[RELATIVE].mean()
    top = fam_mean.abs().idxmax()
    peak = per.loc[per[RELATIVE].abs().idxmax()]
    caption = (f"Relative change of {metric} (fine-tuned minus pretrained, minus the baseline's change) in each "
               f"of {len(order)} layers, in layer order, averaged per family with 95% CIs. Averaged over layers, "
               f"{nice(top)} has the largest mean effect ({_f(fam_mean[top])}; "
               + ", ".join(f"{nice(f)} {_f(fam_mean[f])}" for f in fams if f != top)
               + f"); the single largest family-mean effect is {_f(peak[RELATIVE])} for {nice(peak[FAMILY])} "
               f"in {order[int(peak['layer'])]}.")
    return _save(fig, out, caption)


# ---------------------------------------------------------------------------------------------------------
def quadrant(deltas: pd.DataFrame, out) -> str:
    """Every condition at (mean relative Δ log_norm, mean relative Δ alpha), colored by family."""
    d = deltas[deltas[METRIC].isin([QUADRANT_X, QUADRANT_Y])]
    pts = d.pivot_table(index=[CONDITION, FAMILY], columns=METRIC, values=RELATIVE, aggfunc="mean").reset_index()
    pts = pts.dropna(subset=[QUADRANT_X, QUADRANT_Y])
    if pts.empty:
        raise ValueError("quadrant needs relative effects of log_norm and alpha")
    fams = _family_order(pts[FAMILY])
    fig, ax = plt.subplots(figsize=(6, 5))
    sns.scatterplot(pts, x=QUADRANT_X, y=QUADRANT_Y, hue=FAMILY, hue_order=fams, palette=_palette(fams),
                    s=60, ax=ax)
    for _, r in pts.iterrows():
        ax.annotate(r[CONDITION], (r[QUADRANT_X], r[QUADRANT_Y]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"mean relative Δ {QUADRANT_X}")
    ax.set_ylabel(f"mean relative Δ {QUADRANT_Y}")
    cen = pts.groupby(FAMILY)[[QUADRANT_X, QUADRANT_Y]].mean()
    parts = [f"{nice(f)} centroid ({_f(cen.loc[f, QUADRANT_X])}, {_f(cen.loc[f, QUADRANT_Y])})"
             for f in fams if f in cen.index and f != BASELINE]
    near = ""
    others = [f for f in cen.index if f not in (DIVERSITY, BASELINE)]
    if DIVERSITY in cen.index and others:
        dist = {f: float(np.hypot(*(cen.loc[DIVERSITY] - cen.loc[f]))) for f in others}
        best = min(dist, key=dist.get)
        near = (f" The diversity centroid is nearest to the {nice(best)} centroid (distance {_f(dist[best])}"
                + "".join(f"; {nice(f)} {_f(v)}" for f, v in dist.items() if f != best) + ").")
    caption = (f"Each of {len(pts)} conditions placed at its mean relative change of {QUADRANT_X} (x) and "
               f"{QUADRANT_Y} (y) over layers and seeds, colored by family, axes through 0: "
               + "; ".join(parts) + "." + near)
    return _save(fig, out, caption)


# ---------------------------------------------------------------------------------------------------------
def _condition_panels(runs: pd.DataFrame, metrics, decorate) -> tuple:
    """One bar panel per metric: each condition's mean with its 95% CI across seeds, coloured by family, the
    legend once beside the first panel. decorate(ax, metric) adds the panel's extras and returns its caption note.
    Returns (figure, notes)."""
    order, fams = _condition_order(runs), _family_order(runs[FAMILY])
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(7, 0.4 * len(order)), 2.8 * len(metrics)),
                             squeeze=False, sharex=True)
    notes = []
    for ax, m in zip(axes[:, 0], metrics):
        sns.barplot(runs, x=CONDITION, y=m, hue=FAMILY, order=order, hue_order=fams, palette=_palette(fams),
                    errorbar=t_interval, dodge=False, capsize=0.2, ax=ax)
        ax.set_xlabel("")
        notes.append(decorate(ax, m))
        if ax is not axes[0, 0] and ax.get_legend():
            ax.get_legend().remove()
        elif ax.get_legend():
            sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1))
    axes[-1, 0].tick_params(axis="x", rotation=90)
    return fig, notes


def outcome_bars(runs: pd.DataFrame, out) -> str:
    """id_accuracy / id_ece / ood_accuracy per condition, 95% CIs across seeds."""
    metrics = [m for m in OUTCOMES if m not in CURVATURE_OUTCOMES and m in runs and runs[m].notna().any()]
    if not metrics:
        raise ValueError(f"runs has none of {tuple(OUTCOMES)}")

    def decorate(ax, m):
        lo = runs[m].min()
        if m not in LOWER_IS_BETTER and lo > 0:
            ax.set_ylim(max(0, lo - 0.1 * (runs[m].max() - lo) - 0.02), None)
        cm = runs.groupby(CONDITION)[m].mean()
        fm = runs.groupby(FAMILY)[m].mean()
        low = m in LOWER_IS_BETTER
        bc = cm.idxmin() if low else cm.idxmax()
        bf = fm.idxmin() if low else fm.idxmax()
        return f"best {m} is {bc} ({_f(cm[bc])}) and the best family mean is {nice(bf)} ({_f(fm[bf])})"

    fig, notes = _condition_panels(runs, metrics, decorate)
    n_seeds = runs.groupby(CONDITION).size()
    caption = (f"In-distribution accuracy, calibration error and OOD accuracy per condition, colored by family, "
               f"with 95% CIs across {int(n_seeds.min())}-{int(n_seeds.max())} run(s) per condition; "
               + "; ".join(notes) + ".")
    return _save(fig, out, caption)


# ---------------------------------------------------------------------------------------------------------
def accuracy_vs_vendi(runs: pd.DataFrame, diversity: pd.DataFrame, out) -> str:
    """Mean ID accuracy per condition against its Vendi score (pixel and embedding space)."""
    keys = [k for k in ("dataset", "model", CONDITION) if k in runs and k in diversity]
    acc = runs.groupby(keys + [FAMILY], as_index=False)["id_accuracy"].mean()
    scores = [s for s in VENDI_SCORES if s in diversity]
    div = diversity.groupby(keys, as_index=False, sort=False)[scores].mean()  # the mean over a condition's draws
    pts = acc.merge(div, on=keys, how="inner")
    if pts.empty or not scores:
        raise ValueError("no condition in common between runs and diversity")
    fams = _family_order(pts[FAMILY])
    fig, axes = plt.subplots(1, len(scores), figsize=(5 * len(scores), 4), squeeze=False)
    notes = []
    for ax, s in zip(axes[0], scores):
        sns.scatterplot(pts, x=s, y="id_accuracy", hue=FAMILY, hue_order=fams, palette=_palette(fams),
                        s=50, ax=ax, legend=ax is axes[0][0])
        for _, r in pts.iterrows():
            ax.annotate(r[CONDITION], (r[s], r["id_accuracy"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_xlabel(s.replace("_", " "))
        ax.set_ylabel("mean ID accuracy")
        sub = pts[[s, "id_accuracy"]].dropna()
        r = sub.corr().iloc[0, 1] if len(sub) > 2 and sub[s].std() > 0 else float("nan")
        top = pts.loc[pts[s].idxmax()]
        notes.append(f"{s.replace('_', ' ')}: Pearson r = {_f(r)} over {len(sub)} conditions, highest score "
                     f"{_f(top[s])} for {top[CONDITION]} ({nice(top[FAMILY])}, accuracy {_f(top['id_accuracy'])})")
    caption = ("Mean in-distribution accuracy of each condition (over seeds) against the Vendi score of its "
               "training data, colored by family; " + "; ".join(notes) + ".")
    return _save(fig, out, caption)


# ---------------------------------------------------------------------------------------------------------
def curvature(runs: pd.DataFrame, out) -> str:
    """Hessian trace and top eigenvalue per condition with 95% CIs across seeds; dashed: the pretrained
    references' mean (the loss surface the fine-tunes started on)."""
    metrics = [m for m in CURVATURE_OUTCOMES if m in runs and runs[m].notna().any()]
    if not metrics:
        raise ValueError(f"runs has none of {CURVATURE_OUTCOMES}: is curvature.enabled on?")

    def decorate(ax, m):
        reference = runs[f"{m}_pretrained"].mean() if f"{m}_pretrained" in runs else np.nan
        if np.isfinite(reference):
            ax.axhline(reference, color="k", ls="--", lw=1, label="pretrained")
        by_family = runs.groupby(FAMILY)[m].mean()
        flattest = by_family.idxmin()
        return (f"{nice(m)}: pretrained {_f(reference)}, flattest family {nice(flattest)} "
                f"({_f(by_family[flattest])}), " + ", ".join(f"{nice(f)} {_f(v)}" for f, v in by_family.items()
                                                             if f != flattest))

    fig, notes = _condition_panels(runs, metrics, decorate)
    n_seeds = runs.groupby(CONDITION).size()
    caption = (f"Loss curvature of the fine-tuned weights per condition (Hessian of the training loss on a fixed "
               f"sample, eval mode), with 95% CIs across {int(n_seeds.min())}-{int(n_seeds.max())} seed(s); lower "
               f"is flatter. " + "; ".join(notes) + ".")
    return _save(fig, out, caption)


def curvature_trajectory(curves: pd.DataFrame, out) -> str:
    """Hessian trace after every epoch (curvature.every_epoch), mean per family with 95% CIs over its runs."""
    if "hessian_trace" not in curves or curves["hessian_trace"].isna().all():
        raise ValueError("the curves have no hessian_trace column: is curvature.every_epoch on?")
    fams = _family_order(curves[FAMILY])
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(curves, x="epoch", y="hessian_trace", hue=FAMILY, hue_order=fams, palette=_palette(fams),
                 errorbar=t_interval, marker="o", ax=ax)
    ax.set_yscale("log")
    ax.set_xticks(sorted(curves["epoch"].unique()))
    ax.set_ylabel("Hessian trace (log scale)")
    last = curves[curves["epoch"] == curves["epoch"].max()].groupby(FAMILY)["hessian_trace"].mean()
    caption = (f"Loss curvature along fine-tuning: the Hessian trace after each of {int(curves['epoch'].max())} "
               f"epochs, mean per family over its runs with 95% CIs; after the last epoch "
               + ", ".join(f"{nice(f)} {_f(v)}" for f, v in last.items()) + ".")
    return _save(fig, out, caption)
