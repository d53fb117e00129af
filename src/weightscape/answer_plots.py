"""Figures of the across-seed answer (weightscape.answer's tables), drawn from tables only, like weightscape.plots
(whose saving, palette and column names they share).

    dose_response(curves, placement, effects, out)    regularizer dose-response with the conditions placed on it
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
    regularizers = [f for f in (DROPOUT, WEIGHT_DECAY) if f in set(curves[FAMILY])]
    metrics = list(dict.fromkeys(curves[METRIC]))
    fig, axes = plt.subplots(len(regularizers), len(metrics), figsize=(3.4 * len(metrics), 3.1 * len(regularizers)),
                             squeeze=False, layout="constrained")
    eff = effects.set_index([CONDITION, METRIC]) if len(effects) else pd.DataFrame()
    bounded = (placement["level_ci_low"] > 0) | np.isfinite(placement["level_ci_high"]) if len(placement) else []
    placed = placement[placement["position"].isin(PLACED_POSITIONS) & bounded] if len(placement) else placement
    conditions = list(dict.fromkeys(placed[CONDITION])) if len(placed) else []
    colors = dict(zip(conditions, sns.color_palette("husl", max(len(conditions), 1))))
    notes = []
    for row, family in zip(axes, regularizers):
        curve = curves[curves[FAMILY] == family]
        log_axis = (curve["axis"] == "log10").any()
        place = placed[placed["regularizer"] == family] if len(placed) else placed
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
                e = eff.loc[(p[CONDITION], metric)]
                _draw_placed(ax, p, e, log_axis, lo, hi, pad, colors[p[CONDITION]])
            ax.set_title(nice(metric) + ("" if moves else " (not moved)"), fontsize=9)
            ax.set_xlabel(f"log10 {nice(family)}" if log_axis else f"{nice(family)} p", fontsize=8)
        row[0].set_ylabel(f"{nice(family)}: relative effect", fontsize=8)
        notes += [f"{p[CONDITION]} on {nice(family)}: {p['text']}" for _, p in place.iterrows()]
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
