"""Figures of the across-seed answer (weightscape.answer's tables), drawn from tables only, like weightscape.plots
(whose saving, palette and column names they share).

    dose_response(curves, placement, effects, out)    regularizer dose-response with the conditions placed on it
    where_heatmap(groups, out)                        layer groups x conditions, paired d_z, hatched when not detected
    predictors_plot(predictors, out)                  spectral changes as predictors of accuracy, OOD accuracy, ECE
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from .names import DROPOUT, WEIGHT_DECAY, nice
from .plots import CI_HIGH, CI_LOW, CONDITION, FAMILY, METRIC, PALETTE, _save, plt

#: placement positions with a confidence set for the level (the others are not drawn on a curve)
PLACED_POSITIONS = ("below the smallest level", "within the measured levels", "at the largest level")


def dose_response(curves: pd.DataFrame, placement: pd.DataFrame, effects: pd.DataFrame, out) -> str:
    """The regularizers' dose-response per metric (rows: dropout, weight decay; columns: metrics): each measured
    level's across-seed effect with its decision interval, solid where the regularizer moves the metric (detected at
    some level), grey and dashed where it does not. A condition is drawn only on the panels of a regularizer that
    moves that metric and only where it is placed (a confidence set for its level exists and is bounded on at
    least one side: "compatible with every level" places nothing): at its point level (at
    the left edge below the smallest level), with its effect's interval vertically and its level's confidence set
    horizontally (an arrow where the set is open)."""
    if curves.empty:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no dropout or weight-decay levels in the grid", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, out, "No dose-response: the grid has no dropout or weight-decay levels, so no condition "
                               "can be placed on a regularizer's axis.")
    from .lenses import LENS_NAMES

    curves = curves if "lens" in curves.columns else curves.assign(lens="W")
    placement = placement if "lens" in placement.columns or placement.empty else placement.assign(lens="W")
    effects = effects if "lens" in effects.columns or effects.empty else effects.assign(lens="W")
    panels = [(lens, f) for lens in dict.fromkeys(curves["lens"]) for f in (DROPOUT, WEIGHT_DECAY)
              if ((curves["lens"] == lens) & (curves[FAMILY] == f)).any()]
    regularizers = list(dict.fromkeys(f for _, f in panels))
    metrics = list(dict.fromkeys(curves[METRIC]))
    fig, axes = plt.subplots(len(panels), len(metrics), figsize=(3.4 * len(metrics), 3.1 * len(panels)),
                             squeeze=False, layout="constrained")
    bounded = (placement["level_ci_low"] > 0) | np.isfinite(placement["level_ci_high"]) if len(placement) else []
    placed = placement[placement["position"].isin(PLACED_POSITIONS) & bounded] if len(placement) else placement
    conditions = list(dict.fromkeys(placed[CONDITION])) if len(placed) else []
    colors = dict(zip(conditions, sns.color_palette("husl", max(len(conditions), 1))))
    notes = []
    for row, (lens, family) in zip(axes, panels):
        curve = curves[(curves[FAMILY] == family) & (curves["lens"] == lens)]
        log_axis = (curve["axis"] == "log10").any()
        place = placed[(placed["regularizer"] == family) & (placed["lens"] == lens)] if len(placed) else placed
        eff = effects[effects["lens"] == lens].set_index([CONDITION, METRIC]) if len(effects) else pd.DataFrame()
        for ax, metric in zip(row, metrics):
            c = curve[curve[METRIC] == metric].sort_values("x")
            moves = bool(c["moves"].any())
            color = PALETTE[family] if moves else "#9a9a9a"
            ax.errorbar(c["x"], c["effect"], yerr=[c["effect"] - c[CI_LOW], c[CI_HIGH] - c["effect"]], fmt="o",
                        color=color, capsize=3, label=f"{nice(family)} levels")
            ax.plot(c["x"], c["effect"], color=color, lw=1.2, alpha=0.7, ls="-" if moves else "--")
            ax.axhline(0, color="k", lw=0.6)
            lo, hi = float(c["x"].min()), float(c["x"].max())
            pad = 0.08 * (hi - lo if hi > lo else 1.0)
            ax.set_xlim(lo - 2 * pad, hi + 2 * pad)
            for _, p in place.iterrows() if moves else []:
                if (p[CONDITION], metric) not in eff.index:
                    continue
                _draw_placed(ax, p, eff.loc[(p[CONDITION], metric)], log_axis, lo, hi, pad, colors[p[CONDITION]])
            ax.set_title(f"{LENS_NAMES.get(lens, lens)}: {nice(metric)}" + ("" if moves else " (not moved)"),
                         fontsize=9)
            ax.set_xlabel(f"log10 {nice(family)}" if log_axis else f"{nice(family)} p", fontsize=8)
        row[0].set_ylabel(f"{nice(family)}: paired effect", fontsize=8)
        notes += [f"{p[CONDITION]} on {nice(family)} ({LENS_NAMES.get(lens, lens)}): {p['text']}"
                  for _, p in place.iterrows()]
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, fontsize=7, loc="outside right center")
    seeds = int(curves["n_seeds"].min()) if curves["n_seeds"].notna().any() else 0
    level = curves["ci_level"].iloc[0] if "ci_level" in curves and len(curves) else 0.95
    caption = (f"Dose-response of {' and '.join(nice(f) for f in regularizers)} on {len(metrics)} spectral metrics "
               f"(paired effect, mean over layers, across {seeds} seeds with {100 * level:.3g}% intervals, the "
               f"decision intervals of effects.csv; grey: no level detected). Conditions placed on a regularizer "
               f"that moves the metric, at their equivalent strength: " + ("; ".join(notes) or "none placed") + ".")
    return _save(fig, out, caption)


def _draw_placed(ax, p: pd.Series, e: pd.Series, log_axis: bool, lo: float, hi: float, pad: float, color) -> None:
    """One placed condition on one panel: marker at its point level and effect, its intervals as error bars."""
    axis = (lambda v: np.log10(v) if log_axis else v)
    below = p["position"].startswith("below")
    x = lo - pad if below else axis(p["level"])
    left = lo - 2 * pad if p["level_ci_low"] == 0 else axis(p["level_ci_low"])
    right = hi + 2 * pad if not np.isfinite(p["level_ci_high"]) else axis(p["level_ci_high"])
    ax.errorbar([x], [e["mean"]], xerr=[[max(x - left, 0)], [max(right - x, 0)]],
                yerr=[[e["mean"] - e[CI_LOW]], [e[CI_HIGH] - e["mean"]]], fmt="<" if below else "D", color=color,
                ms=5, capsize=2, lw=0.9, label=p[CONDITION])


# ---------------------------------------------------------------------------------------------------------
def where_heatmap(groups: pd.DataFrame, out) -> str:
    """Where in the network each condition acts (groups.csv): per lens (columns) and metric (rows) a heat map of
    layer groups x conditions, cells = the group's paired d_z (colour clipped at +-10), hatched where the effect
    is not detected."""
    from .lenses import LENS_NAMES

    if groups.empty:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no layer groups", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, out, "No layer groups: the answer had no per-layer table.")
    lenses = list(dict.fromkeys(groups["lens"]))
    metrics = list(dict.fromkeys(groups[METRIC]))
    conditions = list(dict.fromkeys(groups[CONDITION]))
    labels = list(dict.fromkeys(groups["grouping"] + ": " + groups["group"]))
    fig, axes = plt.subplots(len(metrics), len(lenses), figsize=(0.32 * len(conditions) * len(lenses) + 3,
                                                                 0.32 * len(labels) * len(metrics) + 2),
                             squeeze=False, layout="constrained")
    image = None
    for col, lens in enumerate(lenses):
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            part = groups[(groups["lens"] == lens) & (groups[METRIC] == metric)]
            part = part.assign(label=part["grouping"] + ": " + part["group"])
            dz = part.pivot_table(index="label", columns=CONDITION, values="d_z", aggfunc="first")
            dz = dz.reindex(index=labels, columns=conditions)
            det = part.pivot_table(index="label", columns=CONDITION, values="detected", aggfunc="first")
            det = det.reindex(index=labels, columns=conditions).fillna(False).astype(bool)
            image = ax.imshow(np.clip(dz.to_numpy(dtype=float), -10, 10), cmap="RdBu_r", vmin=-10, vmax=10,
                              aspect="auto")
            for i, j in zip(*np.nonzero(~det.to_numpy())):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="////", lw=0,
                                           edgecolor="#888888"))
            ax.set_yticks(range(len(labels)), labels if col == 0 else [""] * len(labels), fontsize=6)
            ax.set_xticks(range(len(conditions)), conditions if row == len(metrics) - 1 else [""] * len(conditions),
                          rotation=90, fontsize=6)
            ax.set_title(f"{LENS_NAMES.get(lens, lens)}: {nice(metric)}", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.4, label="paired d_z (clipped at +-10)")
    seeds = int(groups["n_seeds"].max())
    detected = groups.groupby(["lens", "group"])["detected"].mean()
    top = ", ".join(f"{LENS_NAMES.get(lens, lens)} {g} {100 * v:.0f} %" for (lens, g), v in
                    detected.sort_values(ascending=False).head(4).items())
    caption = (f"Where each condition acts: the paired d_z of its effect on each layer group (position in the "
               f"network, kind of layer) for {len(metrics)} metrics and {len(lenses)} lens(es), {seeds} seeds; "
               f"hatched: not detected (Benjamini-Hochberg over the group's table). Groups with the largest share "
               f"of detected cells: {top}.")
    return _save(fig, out, caption)


def predictors_plot(predictors: pd.DataFrame, out) -> str:
    """Spectral changes as predictors (predictors.csv): Spearman rho of each metric's effect with each outcome's
    change across conditions, with its interval, one panel per lens."""
    from .lenses import LENS_NAMES

    if predictors.empty:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no predictor table", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, out, "No predictor table.")
    lenses = list(dict.fromkeys(predictors["lens"]))
    outcomes = list(dict.fromkeys(predictors["outcome"]))
    fig, axes = plt.subplots(1, len(lenses), figsize=(5 * len(lenses), 3.6), squeeze=False, sharey=True,
                             layout="constrained")
    colors = dict(zip(outcomes, sns.color_palette("colorblind", len(outcomes))))
    for ax, lens in zip(axes[0], lenses):
        part = predictors[predictors["lens"] == lens]
        metrics = list(dict.fromkeys(part[METRIC]))
        for k, outcome in enumerate(outcomes):
            rows = part[part["outcome"] == outcome].set_index(METRIC).reindex(metrics)
            x = np.arange(len(metrics)) + (k - (len(outcomes) - 1) / 2) * 0.22
            ax.errorbar(x, rows["rho"], yerr=[rows["rho"] - rows[CI_LOW], rows[CI_HIGH] - rows["rho"]], fmt="o",
                        color=colors[outcome], capsize=2, label=nice(outcome))
        ax.axhline(0, color="k", lw=0.6)
        for bound in (-0.3, 0.3):
            ax.axhline(bound, color="#999999", lw=0.6, ls=":")
        ax.set_xticks(range(len(metrics)), [nice(m) for m in metrics], rotation=30, fontsize=8)
        ax.set_title(LENS_NAMES.get(lens, lens), fontsize=9)
    axes[0][0].set_ylabel("Spearman rho across conditions")
    axes[0][-1].legend(fontsize=7)
    said = predictors["statement"].value_counts()
    caption = (f"Spectral changes as predictors of {', '.join(nice(o) for o in outcomes)}: Spearman rho across "
               f"{int(predictors['n_conditions'].max())} conditions with its interval (at the level of the "
               f"Benjamini-Hochberg decision); dotted: the +-0.3 band inside which an interval reads 'not "
               f"predictive'. " + ", ".join(f"{n} {s}" for s, n in said.items()) + ".")
    return _save(fig, out, caption)
