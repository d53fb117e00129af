"""``results/summary.md``: the plain-language answer, generated only from the statistics tables.

    write_summary(family_tests, distances, effects, runs, out_md) -> str

No conclusion is hand-written: every sentence is a template filled from the numbers, and a comparison is called
"inconclusive" whenever its confidence intervals overlap (or include 0) or its p-value is >= ALPHA.
All column-name assumptions are the constants below.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.stats
import pandas as pd

from .io import atomic_path

ALPHA = 0.05
# distances (one row per diversity condition x metric)
D_CONDITION, D_METRIC, D_ALL, D_CLOSER = "condition", "metric", "all", "closer_to"
D_TO = {"dropout": "distance_dropout", "weight_decay": "distance_weight_decay"}
# CI column names tried for a distance column `c`, in order
CI_PATTERNS = (("ci_low_{f}", "ci_high_{f}"), ("{c}_ci_low", "{c}_ci_high"), ("ci_low_{c}", "ci_high_{c}"), ("{c}_low", "{c}_high"))
# optional difference column (d_weight_decay - d_dropout, or the reverse) with CIs
DIFF_COLUMNS = ("difference", "diff", "distance_difference")
# family_tests (one row per metric)
T_METRIC, T_F, T_P, T_PAIR_PREFIX = "metric", "F", "p", "p_"
# family_effects
E_FAMILY, E_METRIC, E_LONGNAME, E_ALL, E_MEAN, E_LO, E_HI = "family", "metric", "longname", "__all__", "mean", \
    "ci_low", "ci_high"
# runs
R_FAMILY, R_CONDITION = "family", "condition"
OUTCOMES = {"id_accuracy": "in-distribution accuracy", "id_ece": "expected calibration error (ECE)",
            "ood_accuracy": "out-of-distribution accuracy"}
LOWER_IS_BETTER = {"id_ece"}
BASELINE = "baseline"

def fmt_p(p) -> str:
    """p-values as written in summary.md: 3 decimals, scientific below 0.001."""
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _g(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _nice(name: str) -> str:
    return str(name).replace("_", " ")


def _ci(frame: pd.DataFrame, c: str):
    family = c.removeprefix("distance_")
    for lo, hi in CI_PATTERNS:
        lo, hi = lo.format(c=c, f=family), hi.format(c=c, f=family)
        if lo in frame and hi in frame:
            return lo, hi
    return None


def _verdict(row: pd.Series, frame: pd.DataFrame) -> tuple[str, str]:
    """(verdict word, sentence) for one distances row: 'dropout' / 'weight_decay' / 'inconclusive'."""
    fams = [f for f in D_TO if D_TO[f] in frame]
    dist = {f: float(row[D_TO[f]]) for f in fams}
    if len(dist) < 2 or any(not np.isfinite(v) for v in dist.values()):
        return "inconclusive", "distances missing: inconclusive."
    near = min(dist, key=dist.get)
    far = max(dist, key=dist.get)
    gap = dist[far] - dist[near]
    ratio = dist[far] / dist[near] if dist[near] > 0 else float("inf")
    parts, separated = [], None
    for f in fams:
        ci = _ci(frame, D_TO[f])
        txt = f"{_g(dist[f])} to {_nice(f)}"
        if ci:
            txt += f" (95% CI {_g(row[ci[0]])} to {_g(row[ci[1]])})"
        parts.append(txt)
    diff_col = next((c for c in DIFF_COLUMNS if c in frame and _ci(frame, c)), None)
    if diff_col:
        lo, hi = (float(row[c]) for c in _ci(frame, diff_col))
        separated = bool(lo > 0 or hi < 0) if np.isfinite(lo) and np.isfinite(hi) else None
        how = f"difference {_g(row[diff_col])} (95% CI {_g(lo)} to {_g(hi)})"
    else:
        cn, cf = _ci(frame, D_TO[near]), _ci(frame, D_TO[far])
        if cn and cf and np.isfinite(float(row[cn[1]])) and np.isfinite(float(row[cf[0]])):
            separated = bool(row[cn[1]] < row[cf[0]])        # upper CI of the nearer < lower CI of the farther
        how = f"gap {_g(gap)}, {_g(ratio)}x"
    stated = row.get(D_CLOSER) if D_CLOSER in frame else None
    agrees = stated is None or (isinstance(stated, str) and stated == near)
    distances = "distance " + " vs ".join(parts)
    if separated and agrees:
        return near, f"closer to {_nice(near)}: {distances}; {how}."
    why = "confidence intervals overlap" if separated is False else (
        "no confidence intervals" if separated is None else f"stats table says {stated!r}")
    return "inconclusive", (f"inconclusive ({why}); point estimate nearer {_nice(near)}: {distances}; {how}.")


def _distance_section(distances: pd.DataFrame) -> list[str]:
    out = ["## Is data diversity closer to dropout or to weight decay?", ""]
    if distances is None or distances.empty:
        return out + ["No distance table: inconclusive.", ""]
    d = distances.copy()
    if D_METRIC not in d:
        d[D_METRIC] = D_ALL
    overall = d[d[D_METRIC] == D_ALL]
    counts: dict[str, int] = {}
    lines = []
    for _, row in overall.iterrows():
        v, s = _verdict(row, d)
        counts[v] = counts.get(v, 0) + 1
        lines.append(f"- **{row[D_CONDITION]}** (all metrics): {s}")
    if len(overall):
        tally = ", ".join(f"{n} {'inconclusive' if v == 'inconclusive' else 'closer to ' + _nice(v)}"
                          for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        out += [f"Over all metrics, of {len(overall)} diversity condition(s): {tally}.", ""] + lines + [""]
    per = d[d[D_METRIC] != D_ALL]
    if len(per):
        out += ["Per metric:", ""]
        for (cond, metric), row in per.set_index([D_CONDITION, D_METRIC]).iterrows():
            _, s = _verdict(row.rename(None), per)
            out.append(f"- {cond}, {metric}: {s}")
        out.append("")
    return out


def _tests_section(tests: pd.DataFrame) -> list[str]:
    out = ["## Do the families differ? (one-way ANOVA, pairwise tests, per metric)", ""]
    if tests is None or tests.empty:
        return out + ["No test table.", ""]
    pair_cols = [c for c in tests.columns if c.startswith(T_PAIR_PREFIX) and c != T_P]
    for _, row in tests.iterrows():
        p = float(row[T_P])
        verdict = "the families differ" if p < ALPHA else "inconclusive"
        line = f"- **{row[T_METRIC]}**: ANOVA F = {_g(float(row[T_F]))}, p = {fmt_p(p)} ({verdict})"
        pairs = []
        for c in pair_cols:
            pp = float(row[c])
            label = c[len(T_PAIR_PREFIX):].replace("_vs_", " vs ").replace("_", " ")
            pairs.append(f"{label}: p = {fmt_p(pp)} ({'differ' if pp < ALPHA else 'inconclusive'})")
        out.append(line + ("; " + "; ".join(pairs) if pairs else "") + ".")
    return out + [""]


def _effects_section(effects: pd.DataFrame) -> list[str]:
    out = ["## Mean relative effect per family (all layers)", ""]
    if effects is None or effects.empty:
        return out + ["No effect table.", ""]
    e = effects[effects[E_LONGNAME] == E_ALL] if E_LONGNAME in effects else effects
    for metric, sub in e.groupby(E_METRIC, sort=False):
        bits = []
        for _, r in sub.iterrows():
            excl = r[E_LO] > 0 or r[E_HI] < 0
            bits.append(f"{_nice(r[E_FAMILY])} {_g(r[E_MEAN])} (95% CI {_g(r[E_LO])} to {_g(r[E_HI])}"
                        f"{'' if excl else ', includes 0'})")
        out.append(f"- **{metric}**: " + "; ".join(bits) + ".")
    return out + [""]


def _mean_ci(x: np.ndarray) -> tuple[float, float, float]:
    """Mean with a 95 % Student-t interval (nan when fewer than 2 values)."""
    x = x[np.isfinite(x)]
    m = float(x.mean()) if len(x) else float("nan")
    if len(x) < 2:
        return m, float("nan"), float("nan")
    low, high = scipy.stats.t.interval(0.95, len(x) - 1, loc=m, scale=scipy.stats.sem(x))
    return m, float(low), float(high)


def _welch_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean difference a - b with a Welch 95% CI (nan when either side has < 2 values)."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
    if len(a) < 2 or len(b) < 2:
        return diff, float("nan"), float("nan")
    if a.var() == 0 and b.var() == 0:
        return diff, diff, diff
    ci = scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return diff, float(ci.low), float(ci.high)


def _outcomes_section(runs: pd.DataFrame) -> list[str]:
    out = ["## Accuracy, calibration and OOD accuracy", ""]
    if runs is None or runs.empty:
        return out + ["No runs table.", ""]
    fams = list(dict.fromkeys(runs[R_FAMILY]))
    for col, label in OUTCOMES.items():
        if col not in runs or runs[col].notna().sum() == 0:
            continue
        lower = col in LOWER_IS_BETTER
        bits = []
        base = runs.loc[runs[R_FAMILY] == BASELINE, col].to_numpy(float)
        for f in fams:
            vals = runs.loc[runs[R_FAMILY] == f, col].to_numpy(float)
            m, lo, hi = _mean_ci(vals)
            s = f"{_nice(f)} {_g(m)} (95% CI {_g(lo)} to {_g(hi)}, n = {np.isfinite(vals).sum()})"
            if f != BASELINE and len(base):
                d, dlo, dhi = _welch_ci(vals, base)
                if np.isfinite(dlo) and (dlo > 0 or dhi < 0):
                    better = (d < 0) if lower else (d > 0)
                    s += f", {'better' if better else 'worse'} than baseline by {_g(abs(d))} (CI {_g(dlo)} to {_g(dhi)})"
                else:
                    s += f", vs baseline {_g(d)}: inconclusive"
            bits.append(s)
        cm = runs.groupby(R_CONDITION)[col].mean()
        best = cm.idxmin() if lower else cm.idxmax()
        out.append(f"- **{label}** ({'lower' if lower else 'higher'} is better): " + "; ".join(bits)
                   + f". Best condition: {best} ({_g(cm[best])}).")
    n = runs.groupby(R_CONDITION).size()
    out += ["", f"Runs per condition: {int(n.min())} to {int(n.max())}; family CIs pool conditions and seeds "
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


def write_summary(family_tests: pd.DataFrame, distances: pd.DataFrame, effects: pd.DataFrame,
                  runs: pd.DataFrame, out_md, fidelity: pd.DataFrame | None = None) -> str:
    """Write ``out_md`` (markdown, atomically) and return its text."""
    lines = ["# Does data diversity act like dropout or like weight decay?", "",
             "Generated from the statistics tables; every statement below is filled in from the numbers. "
             f"A comparison is *inconclusive* when its 95% confidence intervals overlap or include 0, or p >= {ALPHA}.",
             ""]
    lines += _distance_section(distances)
    lines += _tests_section(family_tests)
    lines += _effects_section(effects)
    lines += _outcomes_section(runs)
    lines += _fidelity_section(fidelity)
    text = "\n".join(lines).rstrip() + "\n"
    out_md = Path(out_md)
    with atomic_path(out_md) as tmp:
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
    return text
