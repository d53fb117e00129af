"""Where in the network each condition acts: the same across-seed machinery on each group of layers.

A group is a position (stem / early / middle / late / head) or a kind of layer (conv, depthwise conv, pointwise
conv, linear, attention q/k/v), from weightscape.lenses.layer_groups. On the cube of one group's layers the effects
(paired effect, d_z, decision interval, state) and the verdicts are computed exactly as for the whole network
(`weightscape.answer.judge`: its own priors, Benjamini-Hochberg over the group's table), so a group's row reads like
a whole-network one.
"""

from __future__ import annotations

import pandas as pd

from .seeds import SCOPE, Cube, margins, noise_table

GROUP_COLUMNS = ["scope", "grouping", "group", "n_layers", "condition", "family", "metric", "n_seeds", "mean", "d_z",
                 "ci_low", "ci_high", "ci_level", "detected", "state", "verdict"]


def group_effects(cube: Cube, groups: pd.DataFrame, judge, families: dict, cfg: dict) -> pd.DataFrame:
    """One row per (grouping, group, non-baseline condition, metric) with the group's effect and state and the
    condition's verdict on that group (data conditions; "" for regularizer levels). `groups`: lenses.layer_groups
    rows (longname, position, kind); `judge`: weightscape.answer.judge."""
    out = []
    for grouping in ("position", "kind"):
        for group, part in groups.groupby(grouping, sort=False):
            sub = cube.subset(part["longname"])
            if not sub.layers:
                continue
            noise = noise_table(sub)
            tables = judge(sub, families, margins(cfg["equivalence_margin"], noise), noise, cfg)
            verdict = tables["verdicts"].set_index("condition")["verdict"]
            e = tables["effects"]
            out.append(e.assign(scope=SCOPE, grouping=grouping, group=group, n_layers=len(sub.layers),
                                verdict=e["condition"].map(verdict).fillna("")))
    if not out:
        return pd.DataFrame(columns=GROUP_COLUMNS)
    return pd.concat(out, ignore_index=True)[GROUP_COLUMNS]
