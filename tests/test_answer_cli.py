"""`weightscape answer --manifest`: the across-seed answer from published per-layer tables is the pipeline rule's
(the same code on the same tables: both lenses, W from the pretrained / fine-tuned tables and Delta W from the
`stage: delta` tables), and a one-seed manifest gets the across-layer tables and one line."""

import numpy as np
import pandas as pd
import planted as P
import pytest

from weightscape.answer import TABLES, answer, read_table, write_answer
from weightscape.cli import main
from weightscape.lenses import lens_deltas


def plan(lens: str = "W") -> dict:
    return {**P.regularizer_plan(lens), **P.copies(lens, of=["weight_decay_0.001", "dropout_0.5"]),
            **P.baseline_copy(lens)}


PLAN = plan()


def two_lens_layers(n_seeds: int, rng_seed: int = 7) -> pd.DataFrame:
    """The W lens's tables (stage pretrained and finetuned) and the update's own (stage delta: metric(Delta W), as
    `weightscape spectra --base` writes them), each drawn at its lens's default-run scale, for the same runs."""
    update_plan = plan("delta")
    assert list(update_plan) == list(PLAN)
    w = P.make_layers(PLAN, n_seeds, rng_seed=rng_seed)
    update = P.make_layers(update_plan, n_seeds, lens="delta", rng_seed=rng_seed + 1)
    update = update[update["stage"] == "finetuned"].assign(stage="delta")
    return pd.concat([w, update], ignore_index=True)


def write_manifest(folder, layers: pd.DataFrame) -> str:
    """One WeightWatcher-style CSV per analysed model (and stage) and a manifest with seed and level columns."""
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


def test_the_manifest_answer_is_the_pipeline_rules_on_both_lenses(tmp_path, capsys):
    layers = two_lens_layers(3)
    manifest = write_manifest(tmp_path, layers)
    assert set(pd.read_csv(manifest)["stage"]) == {"pretrained", "finetuned", "delta"}
    assert main(["answer", "--manifest", manifest, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    # the rule (workflow_scripts/answer.py) on the same tables: answer(lens_deltas(layers.parquet), runs.csv, ...)
    layers.to_parquet(tmp_path / "layers.parquet", index=False)
    P.make_runs(PLAN, 3).to_csv(tmp_path / "runs.csv", index=False)
    rule = answer(lens_deltas(pd.read_parquet(tmp_path / "layers.parquet")), pd.read_csv(tmp_path / "runs.csv"),
                  diversity=None, combined={}, config=None)
    write_answer(rule, tmp_path / "rule")
    assert set(p.stem for p in (tmp_path / "out" / "answer").glob("*.csv")) == set(TABLES)
    for name in TABLES:
        pd.testing.assert_frame_equal(read_table(tmp_path / "out" / "answer" / f"{name}.csv"),
                                      read_table(tmp_path / "rule" / f"{name}.csv"), obj=name)
    verdicts = read_table(tmp_path / "out" / "answer" / "verdicts.csv")
    copies = [c for c in PLAN if c.startswith("copy:")]
    assert set(verdicts["lens"]) == {"W", "delta"}
    for lens in ("W", "delta"):
        assert sorted(verdicts.loc[verdicts["lens"] == lens, "condition"]) == sorted(copies)
    # the delta lens is read from the delta tables: its effects are the update's, not W's
    effects = read_table(tmp_path / "out" / "answer" / "effects.csv").set_index(["lens", "condition", "metric"])
    key = ("copy:weight_decay_0.001", "log_norm")
    assert effects.at[("delta",) + key, "mean"] != pytest.approx(effects.at[("W",) + key, "mean"], rel=0.05)
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
