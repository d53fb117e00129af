"""``results/summary.md``: the plain-language answer, generated only from the statistics tables.

    write_summary(tests=..., distances=..., effects=..., outcomes=..., out_md=...) -> str

No conclusion is hand-written and nothing is recomputed here: every sentence is a template filled from the
tables of weightscape.stats, and a comparison is called "inconclusive" whenever its confidence intervals overlap
(or include 0) or its p-value is >= ALPHA. Column names are those weightscape.stats writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_path
from .names import ALL_LAYERS, BASELINE, LOWER_IS_BETTER, OUTCOMES, REGULARIZERS, nice

ALPHA = 0.05


def fmt_p(p) -> str:
    """p-values as written in summary.md: 3 decimals, scientific below 0.001."""
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _g(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _verdict(row: pd.Series) -> tuple[str, str]:
    """(verdict word, sentence) for one condition_distances row: 'dropout' / 'weight_decay' / 'inconclusive'.
    Separated = the upper CI bound of the nearer family's distance lies below the lower bound of the farther's."""
    dist = {f: float(row[f"distance_{f}"]) for f in REGULARIZERS}
    if any(not np.isfinite(v) for v in dist.values()):
        return "inconclusive", "distances missing: inconclusive."
    near, far = min(dist, key=dist.get), max(dist, key=dist.get)
    gap = dist[far] - dist[near]
    ratio = dist[far] / dist[near] if dist[near] > 0 else float("inf")
    parts = [f"{_g(dist[f])} to {nice(f)} (95% CI {_g(row[f'ci_low_{f}'])} to {_g(row[f'ci_high_{f}'])})"
             for f in REGULARIZERS]
    upper_near, lower_far = float(row[f"ci_high_{near}"]), float(row[f"ci_low_{far}"])
    separated = bool(upper_near < lower_far) if np.isfinite(upper_near) and np.isfinite(lower_far) else None
    how = f"gap {_g(gap)}, {_g(ratio)}x"
    distances = "distance " + " vs ".join(parts)
    if separated and row["closer_to"] == near:
        return near, f"closer to {nice(near)}: {distances}; {how}."
    why = "confidence intervals overlap" if separated is False else "no confidence intervals"
    return "inconclusive", f"inconclusive ({why}); point estimate nearer {nice(near)}: {distances}; {how}."


def _distance_section(distances: pd.DataFrame) -> list[str]:
    out = ["## Across layers: is data diversity closer to dropout or to weight decay?", ""]
    if distances is None or distances.empty:
        return out + ["No distance table: inconclusive.", ""]
    overall = distances[distances["metric"] == "all"]
    counts: dict[str, int] = {}
    lines = []
    for _, row in overall.iterrows():
        v, s = _verdict(row)
        counts[v] = counts.get(v, 0) + 1
        lines.append(f"- **{row['condition']}** (all metrics): {s}")
    if len(overall):
        tally = ", ".join(f"{n} {'inconclusive' if v == 'inconclusive' else 'closer to ' + nice(v)}"
                          for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        out += [f"Over all metrics, of {len(overall)} diversity condition(s): {tally}.", ""] + lines + [""]
    per = distances[distances["metric"] != "all"]
    if len(per):
        out += ["Per metric:", ""]
        for _, row in per.iterrows():
            out.append(f"- {row['condition']}, {row['metric']}: {_verdict(row)[1]}")
        out.append("")
    return out


def _tests_section(tests: pd.DataFrame) -> list[str]:
    out = ["## Do the families differ? (one-way ANOVA, pairwise tests, per metric)", ""]
    if tests is None or tests.empty:
        return out + ["No test table.", ""]
    pair_cols = [c for c in tests.columns if c.startswith("p_")]
    for _, row in tests.iterrows():
        p = float(row["p"])
        verdict = "the families differ" if p < ALPHA else "inconclusive"
        line = f"- **{row['metric']}**: ANOVA F = {_g(float(row['F']))}, p = {fmt_p(p)} ({verdict})"
        pairs = []
        for c in pair_cols:
            pp = float(row[c])
            label = c.removeprefix("p_").replace("_vs_", " vs ").replace("_", " ")
            pairs.append(f"{label}: p = {fmt_p(pp)} ({'differ' if pp < ALPHA else 'inconclusive'})")
        out.append(line + ("; " + "; ".join(pairs) if pairs else "") + ".")
    return out + [""]


def _effects_section(effects: pd.DataFrame) -> list[str]:
    out = ["## Mean relative effect per family (all layers)", ""]
    if effects is None or effects.empty:
        return out + ["No effect table.", ""]
    overall = effects[effects["longname"] == ALL_LAYERS]
    for metric, sub in overall.groupby("metric", sort=False):
        bits = []
        for _, r in sub.iterrows():
            excl = r["ci_low"] > 0 or r["ci_high"] < 0
            bits.append(f"{nice(r['family'])} {_g(r['mean'])} (95% CI {_g(r['ci_low'])} to {_g(r['ci_high'])}"
                        f"{'' if excl else ', includes 0'})")
        out.append(f"- **{metric}**: " + "; ".join(bits) + ".")
    return out + [""]


def _outcomes_section(outcomes: pd.DataFrame) -> list[str]:
    """One line per dataset/model and outcome, read from outcome_tests.csv."""
    out = ["## Outcomes: accuracy, calibration, OOD accuracy (and loss curvature when measured)", ""]
    if outcomes is None or outcomes.empty:
        return out + ["No outcome table.", ""]
    several = outcomes[["dataset", "model"]].drop_duplicates().shape[0] > 1
    for _, row in outcomes.iterrows():
        outcome, lower = row["outcome"], row["outcome"] in LOWER_IS_BETTER
        families = [BASELINE] + [c.removeprefix("diff_baseline_") for c in row.index
                                 if c.startswith("diff_baseline_") and pd.notna(row[c])]
        bits = []
        for f in families:
            s = (f"{nice(f)} {_g(row[f'mean_{f}'])} (95% CI {_g(row[f'ci_low_{f}'])} to {_g(row[f'ci_high_{f}'])}, "
                 f"n = {int(row[f'n_{f}'])})")
            if f != BASELINE:
                d, low, high = (float(row[f"{k}_{f}"]) for k in ("diff_baseline", "diff_ci_low", "diff_ci_high"))
                if np.isfinite(low) and (low > 0 or high < 0):
                    better = (d < 0) if lower else (d > 0)
                    s += (f", {'better' if better else 'worse'} than baseline by {_g(abs(d))} "
                          f"(CI {_g(low)} to {_g(high)})")
                else:
                    s += f", vs baseline {_g(d)}: inconclusive"
            bits.append(s)
        where = f" on {row['dataset']} / {row['model']}" if several else ""
        out.append(f"- **{OUTCOMES[outcome]}**{where} ({'lower' if lower else 'higher'} is better): "
                   + "; ".join(bits) + f". Best condition: {row['best_condition']} ({_g(row['best_value'])}).")
    low, high = int(outcomes["runs_per_condition_min"].min()), int(outcomes["runs_per_condition_max"].max())
    out += ["", f"Runs per condition: {low} to {high}; family CIs pool conditions and seeds "
            f"(Student-t), differences from baseline use Welch intervals.", ""]
    return out


def _fidelity_section(fidelity: pd.DataFrame | None) -> list[str]:
    """One line per synthetic set: class consistency against its judge's real accuracy, FD against the real-vs-real
    value, Vendi scores next to the real set's."""
    if fidelity is None or fidelity.empty:
        return []
    out = ["## Synthetic data: fidelity", ""]
    for _, row in fidelity.iterrows():
        fd = [c for c in row.index if c.startswith("fd_") and not c.endswith("_real_train_vs_test")]
        trained_on = (f", trained on {int(row['judge_n_train'])} real images" if "judge_n_train" in row.index
                      and pd.notna(row["judge_n_train"]) else "")
        bits = [f"class consistency {_g(row['class_consistency'])} (the judge's accuracy on real test images: "
                f"{_g(row['judge_real_test_accuracy'])}{trained_on})"]
        bits += [f"FD in {row['backbone']} features {_g(row[c])} (real train vs real test: "
                 f"{_g(row[c + '_real_train_vs_test'])})" for c in fd]
        bits.append(f"embedding Vendi {_g(row['vendi_embedding_synthetic'])} vs real {_g(row['vendi_embedding_real'])}"
                    f", pixel Vendi {_g(row['vendi_pixel_synthetic'])} vs real {_g(row['vendi_pixel_real'])}")
        out.append(f"- **{row['generator']}** on {row['dataset']} ({int(row['n_synthetic'])} images): "
                   + "; ".join(bits) + ".")
    return out + [""]


def write_summary(*, tests: pd.DataFrame, distances: pd.DataFrame, effects: pd.DataFrame, outcomes: pd.DataFrame,
                  out_md: str | Path, answer: dict[str, pd.DataFrame] | None = None,
                  fidelity: pd.DataFrame | None = None, resample_per_seed: bool = False) -> str:
    """Write ``out_md`` (markdown, atomically) from the statistics tables and return its text: the across-seed
    answer first (weightscape.answer's tables; `resample_per_seed`: whether a seed also redraws the training
    subset), then the paper's across-layer comparison and the outcomes."""
    lines = ["# Does data diversity act on the weights like a regularizer, and like which one?", ""]
    if answer is not None:
        from .answer_report import answer_section

        lines += answer_section(answer, resample_per_seed=resample_per_seed)
    lines += ["Generated from the statistics tables; every statement below is filled in from the numbers. "
              f"Across layers (the paper's tests, layers as observations): a comparison is *inconclusive* when its "
              f"95% confidence intervals overlap or include 0, or p >= {ALPHA}.", ""]
    lines += _distance_section(distances)
    lines += _tests_section(tests)
    lines += _effects_section(effects)
    lines += _outcomes_section(outcomes)
    lines += _fidelity_section(fidelity)
    text = "\n".join(lines).rstrip() + "\n"
    with atomic_path(out_md) as tmp:
        tmp.write_text(text)
    return text
