"""The opening of summary.md: the across-seed answer, generated from weightscape.answer's tables only.

    answer_section(tables) -> markdown lines: the one table, two sentences per paper claim, the margin
                              sensitivity, what more seeds would decide; then "How to read this"

Nothing is recomputed here: every number is a table's, printed with `fmt` (3 significant digits), and every
interval is the one stored beside it (the interval of the test that decided).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .answer import verdict
from .lenses import LENS_NAMES, SCALE_METRICS
from .names import OUTCOMES, REGULARIZERS, nice


def fmt(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3g}"


def interval_text(mean, low, high) -> str:
    """'0.812 (0.801 to 0.823)'; the point alone where there is no interval."""
    if not np.isfinite(low):
        return fmt(mean)
    return f"{fmt(mean)} ({fmt(low)} to {fmt(high)})"


def _text(x) -> str:
    return x if isinstance(x, str) else ""


def verdict_cell(r: pd.Series) -> str:
    """'like dropout (Delta W; W: inconclusive)': the verdict, the lens it rests on and where the others differ."""
    if not _text(r["lens"]):
        return r["verdict"]
    other = f"; {r['other_lenses']}" if _text(r["other_lenses"]) else ""
    return f"{r['verdict']} ({r['lens']}{other})"


#: the overview's columns as printed: (header, formatter of one overview row)
OVERVIEW_COLUMNS = (
    ("condition", lambda r: f"**{r['condition']}**"),
    ("family", lambda r: nice(r["family"])),
    ("verdict", verdict_cell),
    ("equivalent dropout p (CI)", lambda r: _text(r["dropout"])),
    ("equivalent lambda (CI)", lambda r: _text(r["weight_decay"])),
    ("ID accuracy", lambda r: interval_text(r["id_accuracy"], r["id_accuracy_ci_low"], r["id_accuracy_ci_high"])),
    ("OOD accuracy", lambda r: interval_text(r["ood_accuracy"], r["ood_accuracy_ci_low"],
                                             r["ood_accuracy_ci_high"])),
    ("ECE", lambda r: interval_text(r["id_ece"], r["id_ece_ci_low"], r["id_ece_ci_high"])),
)


def overview_table(overview: pd.DataFrame) -> list[str]:
    """The overview table (weightscape.answer.overview) as markdown lines: one row per condition."""
    head = [h for h, _ in OVERVIEW_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in overview.iterrows():
        lines.append("| " + " | ".join(str(f(r)) for _, f in OVERVIEW_COLUMNS) + " |")
    return lines


CLAIM_TITLES = {"more diversity, more dropout-like": "Claim 1 - more diversity, more dropout-like",
                "synthetic data adds diversity and helps OOD": "Claim 2 - synthetic data adds diversity and helps "
                                                               "out of distribution"}


def sentence(text: str) -> str:
    text = str(text).strip()
    return (text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else ""


def claim_lines(claims: pd.DataFrame) -> list[str]:
    """Two sentences per paper claim: its statement with the deciding numbers, then what qualifies it. A claim
    judged on each lens (claim 1) names the lens of each statement, the update's (Delta W) first."""
    out = []
    for claim, rows in claims.groupby("claim", sort=False):
        rows = rows.assign(_order=rows["lens"].map({"delta": 0, "W": 1}).fillna(2)).sort_values("_order")
        lensed = [f"{r['statement']} on {LENS_NAMES.get(r['lens'], r['lens'])}" for _, r in rows.iterrows()
                  if _text(r["lens"])]
        first = rows.iloc[0]
        statement = ", ".join(lensed) if lensed else first["statement"]
        reason = "; ".join(f"{LENS_NAMES[r['lens']]}: {r['reason']}" if _text(r["lens"]) else r["reason"]
                           for _, r in rows.iterrows())
        out += [f"**{CLAIM_TITLES.get(claim, claim)}: {statement}.** {sentence(reason)} "
                f"{sentence(_text(first.get('detail', '')))}".rstrip(), ""]
    return out


def sensitivity_line(sensitivity: pd.DataFrame) -> str:
    """Which verdicts change when every margin is halved or doubled (sensitivity.csv), per lens."""
    if sensitivity.empty:
        return ""
    scales = {c: c.removeprefix("margin_") for c in sensitivity.columns if c.startswith("margin_")}
    at = ", ".join(scales.values())
    moving = sensitivity[sensitivity["depends_on_margin"].astype(bool)]
    if moving.empty:
        return f"No verdict changes with every margin at {at} its value (sensitivity.csv)."
    bits = ["{} on {} ({})".format(r["condition"], LENS_NAMES.get(r.get("lens", "W"), "W"),
                                   "; ".join(f"{k}: {r[c]}" for c, k in scales.items())) for _, r in moving.iterrows()]
    return (f"{len(moving)} of {len(sensitivity)} verdicts depend on the margin (every margin at {at} its value, "
            f"sensitivity.csv): " + "; ".join(bits) + ".")


def _metrics(names: str) -> str:
    """'log_norm,log_spectral_norm' (power.csv's metric cell) as prose: 'log norm, log spectral norm'."""
    return ", ".join(nice(m) for m in str(names).split(","))


def power_line(power: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """What more seeds would decide, per undecided verdict and lens, at the observed effects (power.csv)."""
    from .answer.power import ALREADY, seeds_to_decide

    if power.empty:
        return ""
    bits = []
    for lens, part in power.groupby("lens", sort=False):
        for _, r in seeds_to_decide(part).iterrows():
            if r["decides_by"] == ALREADY:
                bits.append(f"{r['condition']} on {LENS_NAMES[lens]}: its {_metrics(r['metric'])} already "
                            f"beyond the margin, held up by the curve tests")
            elif not np.isfinite(r["seeds_needed"]):
                bits.append(f"{r['condition']} on {LENS_NAMES[lens]}: more than 1000 seeds")
            else:
                bits.append(f"{r['condition']} on {LENS_NAMES[lens]}: {int(r['more_seeds'])} more (its "
                            f"{_metrics(r['metric'])} {r['decides_by']})")
    return ("Seeds that would show an undecided verdict's effect beyond or within the margin (80 % power at the "
            "observed effects, power.csv): " + "; ".join(bits) + ". Adding seeds to the config reruns only the "
            "new seeds' jobs and the summaries.")


def moves_lines(regularizers: pd.DataFrame) -> list[str]:
    """What each regularizer moves per lens, scale metrics (norms) apart from shape metrics."""
    out = []
    for (lens, family), rows in regularizers.groupby(["lens", "family"], sort=False):
        scale = rows[rows["metric"].isin(SCALE_METRICS)]
        shape = rows[~rows["metric"].isin(SCALE_METRICS)]
        out.append(f"- **{nice(family)}** on {LENS_NAMES[lens]} ({int(rows['n_seeds'].min())} seeds): scale: "
                   + "; ".join(scale["statement"]) + ". Shape: " + "; ".join(shape["statement"]) + ".")
    return out


def confound_lines(confound: pd.DataFrame, fit: pd.DataFrame, overview: pd.DataFrame) -> list[str]:
    """Which metrics' across-condition spread training loss explains, and which 'like' verdicts that qualifies."""
    out = []
    for lens, rows in confound.groupby("lens", sort=False):
        bits = [f"{nice(r['metric'])} R2 = {fmt(r['r2'])} (r {fmt(r['r'])}, CI {fmt(r['r_ci_low'])} to "
                f"{fmt(r['r_ci_high'])})" for _, r in rows.iterrows()]
        out.append(f"- Training loss against the effects on {LENS_NAMES[lens]}, across conditions: " + "; ".join(bits)
                   + ".")
    loss = fit[fit["quantity"] == "final_train_loss"].set_index("condition") if len(fit) else pd.DataFrame()
    explained = confound[confound["explained"].astype(bool)] if len(confound) else confound
    for _, r in overview[overview["verdict"].str.startswith("like")].iterrows():
        lens = {v: k for k, v in LENS_NAMES.items()}.get(r["lens"], r["lens"])
        metrics = explained.loc[explained["lens"] == lens, "metric"]
        if r["condition"] in loss.index and loss.at[r["condition"], "ci_low"] > 0 and len(metrics):
            out.append(f"- **{r['condition']}** ({r['verdict']}) fits its training data less than the baseline "
                       f"(training loss +{fmt(loss.at[r['condition'], 'difference'])}), and training loss alone "
                       f"explains the spread of {', '.join(map(nice, metrics))} on {r['lens']}: its verdict could "
                       f"read 'fits the training data less'.")
    return out


def predictor_lines(predictors: pd.DataFrame) -> list[str]:
    out = []
    for (lens, statement), rows in predictors.groupby(["lens", "statement"], sort=False):
        if statement == "inconclusive":
            continue
        bits = [f"{nice(r['metric'])} of {nice(r['outcome'])} (rho {fmt(r['rho'])}, CI {fmt(r['ci_low'])} to "
                f"{fmt(r['ci_high'])})" for _, r in rows.iterrows()]
        out.append(f"- {statement.capitalize()} on {LENS_NAMES[lens]}: " + "; ".join(bits) + ".")
    return out or ["- No spectral change is shown predictive or not predictive of an outcome (predictors.csv)."]


def curvature_line(outcome: str, rows: pd.DataFrame) -> str:
    """One curvature outcome: per family the log10 change relative to the baseline's, across seeds, and each data
    condition's equivalent strength on the regularizers that move it (nothing is placed on one that does not)."""
    families = rows[rows["level"] == "family"]
    bits = [f"{nice(r['family'])} {interval_text(r['mean'], r['ci_low'], r['ci_high'])}: {r['statement']}"
            for _, r in families.iterrows()]
    line = (f"- **{OUTCOMES[outcome]}** (log10 change from pretrained relative to the baseline's, "
            f"{int(families['n_seeds'].min())} seeds): " + "; ".join(bits) + ".")
    moves = {reg: rows.iloc[0].get(f"{reg}_moves") for reg in REGULARIZERS}
    moves = {reg: bool(v) for reg, v in moves.items() if isinstance(v, (bool, np.bool_))}
    placed = []
    for _, r in rows[rows["level"] == "condition"].iterrows():
        on = [f"{r[f'{reg}_text']}" for reg, v in moves.items() if v and isinstance(r.get(f"{reg}_text"), str)]
        if on:
            placed.append(f"{r['name']} {', '.join(on)}")
    if placed:
        line += " Equivalent strength: " + "; ".join(placed) + "."
    still = [nice(reg) for reg, v in moves.items() if not v]
    if still:
        line += (f" No level of {' or '.join(still)} is detected on it, so no condition is placed on "
                 f"{'that regularizer' if len(still) == 1 else 'either'}.")
    return line


def _additivity_line(condition: str, rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    verdicts = "; ".join(f"{nice(r['metric'])} on {LENS_NAMES.get(r['lens'], 'W')}: {r['verdict']}"
                         for _, r in rows.iterrows())
    return (f"- **{condition}** (combined: {first['data_condition']} + {first['regularizer_condition']}, "
            f"{int(rows['n_seeds'].min())} seeds): do the effects add? {verdicts}.")


def replication(resample_per_seed: bool) -> str:
    """What a seed varies, in one sentence's middle."""
    if resample_per_seed:
        return ("the head's initialisation, the data order, the augmentation draws, the dropout masks and the training "
                "subset itself (datasets[].resample_per_seed)")
    return ("the head's initialisation, the data order, the augmentation draws and the dropout masks, not the training "
            "subset (drawn once, datasets[].split_seed), so every interval is conditional on that subset")


def answer_section(answer: dict[str, pd.DataFrame], resample_per_seed: bool = False) -> list[str]:
    """The opening of summary.md: the one table, two sentences per claim, the margin sensitivity, the seeds that
    would decide more; then how to read it."""
    overview = answer["overview"]
    seeds = int(overview["n_seeds"].min()) if len(overview) else 0
    out = [f"## The answer ({seeds} seeds per condition)", ""] + overview_table(overview) + [""]
    out += claim_lines(answer["claims"])
    for line in (sensitivity_line(answer.get("sensitivity", pd.DataFrame())),
                 power_line(answer.get("power", pd.DataFrame()), answer["verdicts"])):
        out += [line, ""] if line else []
    disagree = overview[overview["disagree"].astype(bool)]
    if len(disagree):
        out += ["The lenses disagree on " + ", ".join(disagree["condition"]) + " (other_lenses in overview.csv).", ""]
    out += ["## How to read this", "",
            f"Every statistic above is across seeds: a seed is one independent fine-tune - it varies "
            f"{replication(resample_per_seed)} - {seeds} per condition. Two lenses look at each fine-tune: W, the "
            f"fine-tuned weights against pretrained, and Delta W, the update W_finetuned - W_pretrained itself; a "
            f"verdict names the lens it rests on (the more decided one: a 'like', then an undecided effect beyond "
            f"the margin, then 'within the margin'). Equivalent strengths are confidence sets from seed-level tests "
            f"over the regularizer's dose-response curve ('p < 0.30': the set reaches no regularization; '>=': it "
            f"reaches the strongest level measured); outcome intervals are 95 % t-intervals across seeds. " + verdict.RULE,
            "", "What the regularizers themselves move (the curves the conditions are compared with):", ""]
    out += moves_lines(answer["regularizers"])
    inert = answer.get("inert_scale", pd.DataFrame())
    for _, r in inert.iterrows() if len(inert) else []:
        out.append(f"- Scale against shape: doubling a layer's weight changes the training-mode output of {r['model']} "
                   f"by less than 1 % for {int(r['n_inert'])} of its {int(r['n_layers'])} analysed layers (batch "
                   f"norm follows them): their log norm and log spectral norm are functionally inert, so an effect "
                   f"on them need not change what the network computes"
                   + (f"; not for: {r['not_inert']}." if _text(r["not_inert"]) else "."))
    excluded = answer.get("excluded", pd.DataFrame())
    if len(excluded):
        out += ["", "Left out (excluded.csv): " + "; ".join(
            f"{n} x {reason}" for reason, n in excluded.groupby("reason", sort=False).size().items()) + "."]
    out += ["", "Training fit and the effects (a 'like dropout' verdict could be 'fits the training data less'):",
            ""] + confound_lines(answer.get("confound", pd.DataFrame()), answer.get("training_fit", pd.DataFrame()),
                                 overview)
    out += ["", "Spectral changes as predictors of the outcomes (Spearman across conditions):", ""]
    out += predictor_lines(answer.get("predictors", pd.DataFrame()))
    curvature = answer.get("curvature", pd.DataFrame())
    if len(curvature):
        out += [""] + [curvature_line(outcome, rows) for outcome, rows in curvature.groupby("outcome", sort=False)]
    out += ["", "Why each verdict:", ""]
    for _, row in answer["verdicts"].iterrows():
        out.append(f"- **{row['condition']}** on {LENS_NAMES.get(row.get('lens', 'W'), 'W')}: {row['verdict']} - "
                   f"{row['reason']}.")
    additivity = answer["additivity"]
    for condition, rows in additivity.groupby("condition", sort=False) if len(additivity) else []:
        out.append(_additivity_line(condition, rows))
    return out + ["", "# Details", ""]
