"""`weightscape answer --manifest`: the across-seed answer from published per-layer tables is the pipeline rule's
(the same code on the same tables), and a one-seed manifest gets the across-layer tables and one line."""

import numpy as np
import pandas as pd
import planted as P
import pytest

from weightscape import stats as S
from weightscape.answer import TABLES, answer, read_table, write_answer
from weightscape.cli import main

PLAN = {**P.regularizer_plan(), **P.copies(of=["weight_decay_0.001", "dropout_0.5"]), **P.baseline_copy()}


def write_manifest(folder, layers: pd.DataFrame) -> str:
    """One WeightWatcher-style CSV per analysed model and a manifest with seed and level columns."""
    levels = P.make_runs(PLAN, 1).drop_duplicates("condition").set_index("condition")["level"]
    rows = []
    for (condition, seed, stage), table in layers.groupby(["condition", "seed", "stage"], sort=False):
        name = f"{condition.replace(':', '_')}_seed{seed}_{stage}.csv"
        table.drop(columns=["dataset", "model", "condition", "seed", "family", "stage"]).to_csv(folder / name,
                                                                                               index=False)
        rows.append(dict(path=name, condition=condition, family=table["family"].iat[0], stage=stage, dataset="d",
                         model="m", seed=seed, level=levels.get(condition, np.nan) if stage == "finetuned" else ""))
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return str(folder / "manifest.csv")


def test_the_manifest_answer_is_the_pipeline_rules(tmp_path, capsys):
    layers = P.make_layers(PLAN, 3, rng_seed=7)
    manifest = write_manifest(tmp_path, layers)
    assert main(["answer", "--manifest", manifest, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    # the rule: compare -> layer_deltas.parquet -> answer(deltas, runs.csv, ...)
    write_answer(answer(S.layer_deltas(layers), P.make_runs(PLAN, 3)), tmp_path / "rule")
    for name in ("verdicts", "overview", "placement", "effects"):
        pd.testing.assert_frame_equal(read_table(tmp_path / "out" / "answer" / f"{name}.csv"),
                                      read_table(tmp_path / "rule" / f"{name}.csv"))
    assert set(p.stem for p in (tmp_path / "out" / "answer").glob("*.csv")) == set(TABLES)
    assert (tmp_path / "out" / "compare" / "family_tests.csv").is_file()
    assert "copy:weight_decay_0.001" in printed and "like weight decay" in printed


def test_a_one_seed_manifest_writes_the_across_layer_tables_and_says_why_in_one_line(tmp_path, capsys):
    manifest = write_manifest(tmp_path, P.make_layers(PLAN, 1, rng_seed=7))
    assert main(["answer", "--manifest", manifest, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "needs >= 3 seeds per condition (stats.min_seeds)" in out[0] and "has 1" in out[0]
    assert (tmp_path / "out" / "compare" / "family_effects.csv").is_file()
    assert not (tmp_path / "out" / "answer").exists()


def test_bad_manifest_input_is_one_line(tmp_path, capsys):
    layers = P.make_layers(PLAN, 3, rng_seed=7)
    manifest = pd.read_csv(write_manifest(tmp_path, layers), dtype=str)
    manifest.loc[3, "level"] = "high"
    manifest.to_csv(tmp_path / "bad.csv", index=False)
    assert main(["answer", "--manifest", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 5: level 'high' in column level is not a number" in err[0]
    config = tmp_path / "config.yaml"
    config.write_text("stats: {equivalence_margin: {default: {regularizers: 0.25}}}\n")
    assert main(["answer", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "out"),
                 "--config", str(config)]) == 1
    assert "stats.equivalence_margin" in capsys.readouterr().err


@pytest.mark.parametrize("margin", [0.01, 0.2])
def test_the_config_stats_section_reaches_the_answer(tmp_path, capsys, margin):
    layers = P.make_layers(PLAN, 3, rng_seed=7)
    manifest = write_manifest(tmp_path, layers)
    config = tmp_path / "config.yaml"
    config.write_text(f"stats: {{equivalence_margin: {{default: {margin}}}}}\n")
    assert main(["answer", "--manifest", manifest, "--out", str(tmp_path / "out"), "--config", str(config)]) == 0
    noise = pd.read_csv(tmp_path / "out" / "answer" / "noise.csv")
    assert (noise["margin"] == margin).all()
