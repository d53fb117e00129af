"""summary.md's answer section against the CSVs it is generated from: the one table, the claim sentences, the
regularizer sentences - every number the table's, every interval the deciding test's, no placement on a regularizer
that moves nothing. The tables are a planted draw at the default run's scale (tests/planted.py), written to CSV and
read back as the pipeline's rule summary_md reads them."""

import re

import numpy as np
import pandas as pd
import planted as P
import pytest

from weightscape import answer_report, report
from weightscape.answer import TABLES, read_table, write_answer
from weightscape.names import nice
from weightscape.stats import outcome_tests

NUMBER = r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|inf)"


def _runs_with_outcomes(plan, n_seeds):
    """Runs whose training loss and ID accuracy follow each condition's planted effect on the first metric (so the
    confound and predictor lines carry real numbers, not "n/a"), the other outcomes noise."""
    runs = P.make_runs(plan, n_seeds)
    rng = np.random.default_rng(5)
    first = pd.Series({c: v[2][0] for c, v in plan.items()})
    signal = runs["condition"].map(first / first.abs().max()).fillna(0.0).to_numpy()
    return runs.assign(id_accuracy=0.8 - 0.1 * signal + rng.normal(0, 0.002, len(runs)),
                       ood_accuracy=rng.uniform(0.5, 0.8, len(runs)), id_ece=rng.uniform(0.05, 0.1, len(runs)),
                       ood_ece=rng.uniform(0.05, 0.15, len(runs)),
                       final_train_loss=0.2 + 0.5 * signal + rng.normal(0, 0.002, len(runs)))


def _summary(tmp_path, plan, n_seeds=3, rng_seed=0):
    from weightscape import stats as S
    from weightscape.answer import answer

    runs = _runs_with_outcomes(plan, n_seeds)
    deltas = S.layer_deltas(P.make_layers(plan, n_seeds, rng_seed=rng_seed))
    diversity = pd.DataFrame([dict(dataset="d", model="m", condition=c, seed=s, n=100, vendi_pixel=10 + k + 0.1 * s,
                                   vendi_embedding=5 + k, rho=0.6, vendi_weighted=0.6 * (5 + k) + 0.01 * s)
                              for k, c in enumerate(["baseline"] + list(plan)) for s in range(n_seeds)])
    write_answer(answer(deltas, runs, diversity=diversity), tmp_path / "answer")
    tables = {name: read_table(tmp_path / "answer" / f"{name}.csv") for name in TABLES}
    text = report.write_summary(tests=pd.DataFrame(), distances=pd.DataFrame(), effects=pd.DataFrame(),
                                outcomes=outcome_tests(runs), out_md=tmp_path / "summary.md", answer=tables)
    return tables, text.split("# Details")[0]


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    measured = P.measured()
    data = {c: v for c, v in measured.items() if v[0] in ("diversity", "synthetic")}
    return _summary(tmp_path_factory.mktemp("summary"), {**P.regularizer_plan(), **data, **P.copies(
        of=["weight_decay_0.001"])})


def test_the_summary_opens_with_the_one_table_whose_cells_are_the_csvs(summary):
    tables, opening = summary
    lines = opening.splitlines()
    assert lines[2].startswith("## The answer (3 seeds per condition)")
    header = next(i for i, line in enumerate(lines) if line.startswith("| condition |"))
    assert lines[header] == ("| condition | family | verdict | equivalent dropout p (CI) | equivalent lambda (CI) | "
                             "ID accuracy | OOD accuracy | ECE |")
    rows = [line for line in lines[header + 2:] if line.startswith("| ")]
    overview = tables["overview"]
    assert len(rows) == len(overview) and overview["condition"].iat[0] == "baseline"
    for row, (_, r) in zip(rows, overview.iterrows()):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == f"**{r['condition']}**" and cells[2] == answer_report.verdict_cell(r)
        assert cells[2].startswith(r["verdict"])
        assert cells[1] == nice(r["family"])
        assert cells[3] == (r["dropout"] if isinstance(r["dropout"], str) else "")
        assert cells[4] == (r["weight_decay"] if isinstance(r["weight_decay"], str) else "")
        for cell, outcome in zip(cells[5:], ("id_accuracy", "ood_accuracy", "id_ece")):
            numbers = [float(x) for x in re.findall(NUMBER, cell)]
            expected = [r[outcome], r[f"{outcome}_ci_low"], r[f"{outcome}_ci_high"]]
            assert numbers == pytest.approx(expected, rel=5e-3), (cell, expected)


def test_every_claim_has_two_sentences_from_its_csv_row(summary):
    tables, opening = summary
    names = {"W": "W", "delta": "Delta W"}
    for _, claim in tables["claims"].iterrows():
        title = answer_report.CLAIM_TITLES[claim["claim"]]
        line = next(line for line in opening.splitlines() if line.startswith(f"**{title}: "))
        lens = claim["lens"] if isinstance(claim["lens"], str) else ""
        assert (f"{claim['statement']} on {names[lens]}" if lens else f": {claim['statement']}.**") in line
        assert claim["reason"][1:] in line
        if lens in ("delta", "") and isinstance(claim["detail"], str):  # the second sentence: the update lens's
            assert claim["detail"][1:] in line


def test_no_sentence_says_not_detected_next_to_an_interval_that_excludes_zero(summary):
    tables, opening = summary
    said = [s for line in opening.splitlines() if line.startswith("- **")
            for s in re.split(r"; |\. Shape: |: scale: ", line)]
    checked = 0
    for sentence in said:
        if "level is detected on" in sentence:
            low, high = (float(x) for x in re.search(rf"CI ({NUMBER}) to ({NUMBER})", sentence).groups())
            assert low <= 0 <= high, sentence
            checked += 1
    assert checked >= 1
    reg = tables["regularizers"]
    for _, r in reg.iterrows():  # the table itself: not moved <=> its strongest level's interval includes 0
        if not r["moves"]:
            assert r["strongest_ci_low"] <= 0 <= r["strongest_ci_high"]


def test_a_level_is_printed_as_a_point_only_with_a_bounded_interval(summary):
    tables, _ = summary
    for text in pd.concat([tables["overview"]["dropout"], tables["overview"]["weight_decay"]]).dropna():
        for low, high in re.findall(rf"= {NUMBER} \\(({NUMBER}) to ({NUMBER})\\)", text):
            assert float(low) > 0 and np.isfinite(float(high)), text


def test_no_placement_is_printed_for_a_regularizer_that_moves_no_metric(tmp_path):
    plan = {**P.regularizer_plan(), **P.copies(of=["weight_decay_0.001"])}
    flat = {c: (f, lv, 0 * mu, sd) for c, (f, lv, mu, sd) in plan.items() if f == "dropout"}
    tables, opening = _summary(tmp_path, {**plan, **flat}, rng_seed=3)
    assert not tables["regularizers"].query("family == 'dropout'")["moves"].any()
    column = tables["overview"].query("condition != 'baseline'")["dropout"]
    assert column.str.startswith("not placed: dropout moves none of the metrics").all()
    assert "p = " not in "".join(column) and "p < " not in "".join(column)


def test_the_power_confound_and_predictor_lines_are_their_csvs(summary):
    from weightscape.answer.power import seeds_to_decide

    tables, opening = summary
    power_line = next(line for line in opening.splitlines() if line.startswith("Seeds that would show"))
    for lens, part in tables["power"].groupby("lens"):
        name = {"W": "W", "delta": "Delta W"}[lens]
        for _, r in seeds_to_decide(part).iterrows():
            if np.isfinite(r["seeds_needed"]):
                assert f"{r['condition']} on {name}: {int(r['more_seeds'])} more" in power_line
    assert tables["confound"]["r"].notna().any() and (tables["predictors"]["statement"] == "predictive").any()
    for _, r in tables["confound"].iterrows():
        name = {"W": "W", "delta": "Delta W"}[r["lens"]]
        line = next(line for line in opening.splitlines() if line.startswith(f"- Training loss against the effects "
                                                                                f"on {name},"))
        assert (f"{r['metric'].replace('_', ' ')} R2 = {answer_report.fmt(r['r2'])} (r {answer_report.fmt(r['r'])}, "
                f"CI {answer_report.fmt(r['r_ci_low'])} to {answer_report.fmt(r['r_ci_high'])})") in line
    for _, r in tables["predictors"][tables["predictors"]["statement"] != "inconclusive"].iterrows():
        assert (f"{r['metric'].replace('_', ' ')} of {r['outcome'].replace('_', ' ')} (rho "
                f"{answer_report.fmt(r['rho'])}") in opening


def test_the_readme_shows_the_summary_table_as_the_summary_prints_it():
    """README's excerpt (pasted from a real run) keeps the table's current header and verdict vocabulary, so a
    change to the table's format cannot leave the README describing another one."""
    from pathlib import Path

    from weightscape.answer.overview import REFERENCE
    from weightscape.answer.verdict import STATES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text().splitlines()
    header = answer_report.overview_table(pd.DataFrame(columns=[]))[0]
    start = readme.index(header)
    rows = [line for line in readme[start + 2:] if line.startswith("| ")]
    rows = rows[:next((i for i, line in enumerate(rows) if not line.startswith("| **")), len(rows))]
    assert len(rows) >= 3 and rows[0].startswith("| **baseline** | baseline | reference |")
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == len(answer_report.OVERVIEW_COLUMNS)
        assert any(cells[2].startswith(state) for state in (*STATES, REFERENCE)), cells[2]
