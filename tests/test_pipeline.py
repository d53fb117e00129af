"""End to end through the `snakemake` command line, in a scratch directory, on the smoke config."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from weightscape import answer_report

from conftest import REPO, job_counts, reordered, snakemake, write_config
from weightscape import layout

pytestmark = pytest.mark.pipeline
LITE0 = {"model": "efficientnet_lite0", "dataset": "fashion_mnist"}


def run_dir(workdir, condition, seed):
    return workdir / layout.RUNS.format(**LITE0, condition=condition, seed=seed)
CONDITIONS = {"baseline": "baseline", "dropout_0.5": "dropout", "weight_decay_0.001": "weight_decay",
              "autoaugment": "diversity", "noise_0.05": "diversity", "replace_0.5": "synthetic",
              "autoaugment_dropout_0.5": "combined"}


def test_smoke_grid_runs_end_to_end(smoke):
    workdir, _ = smoke
    with open(workdir / layout.RUNS_TABLE) as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["condition"], r["family"], r["seed"]) for r in rows] == [
        (condition, family, seed) for condition, family in CONDITIONS.items() for seed in ("0", "1", "2")]
    for row in rows:
        assert float(row["id_accuracy"]) > 0.2, row  # chance is 0.1 on 10 classes (300 images, 3 epochs)
        assert 0 <= float(row["id_ece"]) <= 1 and float(row["ood_accuracy"]) > 0.1
        assert row["dataset"] == "fashion_mnist" and row["model"] == "efficientnet_lite0"
        run = run_dir(workdir, row["condition"], row["seed"])
        assert (run / "weights.safetensors").stat().st_size > 1_000_000
        metrics = json.loads((run / "metrics.json").read_text())
        assert set(metrics["ood"]["by_corruption"]) == {"gaussian_noise", "defocus_blur", "fog", "contrast",
                                                         "jpeg_compression"}
        assert all(set(s) == {"1", "3", "5"} for s in metrics["ood"]["by_corruption"].values())
        with open(run / "curve.csv") as fh:
            assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]
        assert (workdir / layout.log("finetune", layout.RUN.format(**LITE0, condition=row["condition"],
                                                                     seed=row["seed"]))).stat().st_size > 0
    reference = workdir / layout.REFERENCES.format(**LITE0, seed=0)
    assert (reference / "weights.safetensors").is_file() and (reference / "model.json").is_file()
    assert (workdir / "results" / "benchmarks" / "finetune").is_dir()


def test_smoke_grid_trains_a_generator_samples_it_and_measures_fidelity(smoke):
    workdir, _ = smoke
    generator = workdir / layout.GENERATORS.format(dataset="fashion_mnist", generator="ddpm")
    info = json.loads((generator / "generator.json").read_text())
    assert info["train"]["steps"] == 30 and info["image_shape"] == [28, 28, 1]
    assert torch_load_step(generator / "checkpoint.pt") == 30
    synthetic = workdir / layout.SYNTHETIC.format(dataset="fashion_mnist", generator="ddpm")
    with np.load(synthetic / "train.npz") as archive:
        assert archive["images"].shape == (150, 28, 28, 1)  # per_class 15 x 10 classes
        assert np.bincount(archive["labels"]).tolist() == [15] * 10
    assert json.loads((synthetic / "generator.json").read_text())["generator"]["weights_sha256"] == info["weights_sha256"]
    fidelity = pd.read_csv(workdir / layout.FIDELITY_TABLE)
    assert len(fidelity) == 1 and 0 <= fidelity.loc[0, "class_consistency"] <= 1
    assert fidelity.loc[0, "fd_efficientnet_lite0"] > fidelity.loc[0, "fd_efficientnet_lite0_real_train_vs_test"]
    # the judge: its own fine-tune on 40 real images per class (smoke fidelity.judge), not a grid run
    judge = json.loads((workdir / layout.JUDGE.format(**LITE0) / "metrics.json").read_text())
    assert judge["n_train"] == 400 and judge["epochs"] == 1
    assert fidelity.loc[0, "judge_n_train"] == 400
    assert fidelity.loc[0, "judge_real_test_accuracy"] == judge["test"]["accuracy"] > 0.1  # above chance
    metrics = json.loads((run_dir(workdir, "replace_0.5", 0) / "metrics.json").read_text())
    assert metrics["n_train"] == 300 and metrics["n_synthetic"] == 150  # 30 per class: 15 real + 15 synthetic


def torch_load_step(path) -> int:
    import torch

    return torch.load(path, weights_only=False)["step"]


def test_smoke_grid_has_spectra_for_the_reference_and_every_run(smoke):
    workdir, _ = smoke
    layers = pd.read_parquet(workdir / layout.LAYERS_TABLE)
    per_model = layers.groupby(["stage", "condition", "seed"]).size()
    assert set(per_model.index) == {(stage, condition, seed) for stage, condition in
                                    [("pretrained", "pretrained")] + [(stage, c) for c in CONDITIONS
                                                                      for stage in ("finetuned", "delta")]
                                    for seed in (0, 1, 2)}  # spectra.delta is on by default
    from torch import nn

    from weightscape.models import build_model

    lite0 = build_model("efficientnet_lite0", 10, weights="random").module
    weight_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in lite0.modules())
    assert per_model.nunique() == 1 and per_model.iloc[0] == weight_layers == 50  # every model, every layer
    assert {"alpha", "log_norm", "log_spectral_norm", "stable_rank", "entropy", "num_spikes", "dead_taps"} <= set(
        layers.columns)
    # at 32 px the last stage works on 1 x 1 maps: its 5 x 5 kernels keep only their centre tap
    last = layers[(layers["stage"] == "pretrained") & layers["longname"].str.startswith("blocks.5.")
                  & layers["longname"].str.endswith("conv_dw")]
    assert (last["dead_taps"] >= 16).all() and len(last) == 12 and last["scale_effect"].notna().all()
    # fine-tuning moved the weights: the classifier's norm differs from the reference's
    head = layers[(layers["longname"] == "classifier") & (layers["seed"] == 0) & (layers["stage"] != "delta")
                  ].set_index("condition")["log_norm"]
    assert head["baseline"] != head["pretrained"]
    run = run_dir(workdir, "baseline", 0) / "spectra"
    assert len(pd.read_csv(run / "layers.csv")) == per_model.iloc[0]
    assert (run / "eigenvalues.npz").stat().st_size > 0


def test_smoke_grid_measures_diversity_of_every_condition(smoke):
    workdir, _ = smoke
    draws = pd.read_csv(workdir / layout.DIVERSITY_TABLE)
    assert list(dict.fromkeys(draws["condition"])) == list(CONDITIONS)
    assert (draws.groupby("condition")["seed"].apply(list) == [[0, 1, 2]] * len(CONDITIONS)).all()  # a draw a seed
    assert (draws["n"] == 60).all()
    assert draws.groupby("condition")["vendi_pixel"].nunique()["replace_0.5"] == 3  # the seeds' own mixes
    scores = ["vendi_pixel", "vendi_embedding", "rho"]
    combined = draws[draws["condition"] == "autoaugment_dropout_0.5"][scores].to_numpy()
    assert np.array_equal(combined, draws[draws["condition"] == "autoaugment"][scores].to_numpy())  # same data
    table = draws[draws["seed"] == 0].set_index("condition")
    # rho pairs each image with an independent real image of its class: below 1 for the real-only set too
    assert 0.2 < table.loc["baseline", "rho"] < 0.99
    assert table.loc["dropout_0.5", "vendi_pixel"] == table.loc["baseline", "vendi_pixel"]
    # augmentations and synthetic images change what training sees
    for name in ("autoaugment", "noise_0.05", "replace_0.5"):
        assert table.loc[name, "vendi_embedding"] != table.loc["baseline", "vendi_embedding"]
    assert table.loc["noise_0.05", "rho"] < table.loc["baseline", "rho"]
    assert table.loc["noise_0.05", "vendi_pixel"] > table.loc["baseline", "vendi_pixel"]
    assert table.loc["noise_0.05", "kind"] == "noise" and table.loc["noise_0.05", "level"] == 0.05
    assert table.loc["replace_0.5", "family"] == "synthetic" and table.loc["replace_0.5", "kind"] == "replace"


FIGURES = [*layout.FIGURES, "curvature"]  # the smoke config measures curvature (not every epoch)


def test_smoke_grid_answers_with_statistics_figures_summary_and_report(smoke):
    workdir, config = smoke
    results = workdir / "results"
    tests = pd.read_csv(results / "compare" / "family_tests.csv").set_index("metric")
    assert {"alpha", "log_norm", "log_spectral_norm", "entropy"} <= set(tests.index)
    assert {"F", "p", "p_welch_diversity_vs_dropout", "p_student_diversity_vs_weight_decay"} <= set(tests.columns)
    effects = pd.read_csv(results / "compare" / "family_effects.csv")
    overall = effects[effects["scope"] == "overall"]
    assert (overall["n_seeds"] == 3).all()  # three seeds in the smoke config -> intervals across seeds
    assert overall["ci_low_seeds"].notna().all() and (overall["ci_low_seeds"] <= overall["mean"]).all()
    distances = pd.read_csv(results / "compare" / "condition_distances.csv")
    assert set(distances["condition"]) == {"autoaugment", "noise_0.05", "replace_0.5"}
    for name in FIGURES:
        assert (results / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert len((results / "figures" / f"{name}.txt").read_text().strip()) > 40
    summary = (results / "summary.md").read_text()
    for condition in ("autoaugment", "noise_0.05", "replace_0.5"):
        assert f"**{condition}**" in summary
    assert "weight decay" in summary and "| equivalent dropout p (CI) |" in summary
    assert "Hessian trace (loss curvature)" in summary  # curvature joins the outcome statistics
    report = workdir / "report.html"
    result = snakemake(workdir, "--configfile", str(config), "--report", str(report))
    assert result.returncode == 0, result.stderr[-2000:]
    assert report.stat().st_size > 100_000


def test_changing_a_plot_parameter_reruns_only_the_plots(smoke):
    workdir, config = smoke
    changed = write_config(workdir / "plots.yaml", config, plots={"layer_metric": "log_norm"})
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout) == {"plots": 1, "all": 1, "total": 2}


def test_changing_a_statistics_parameter_reruns_no_fine_tune_and_no_spectra(smoke):
    workdir, config = smoke
    changed = write_config(workdir / "stats.yaml", config, compare={"n_resamples": 500}, stats={"alpha": 0.01})
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout) == {"compare": 1, "answer": 1, "plots": 1, "summary_md": 1, "all": 1,
                                          "total": 5}


def test_adding_one_dropout_level_runs_only_that_cell_and_the_aggregates(smoke):
    workdir, config = smoke
    families = yaml.safe_load(config.read_text())["families"]
    changed = write_config(workdir / "more_dropout.yaml", config, families={**families, "dropout": [0.5, 0.3]})
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr
    # the new cell: one fine-tune + spectra (W and Delta W) + curvature per seed (3 seeds), then every aggregate
    # once; no diversity
    # job: a dropout level trains on the baseline's data, whose scores it shares
    assert job_counts(result.stdout) == {"finetune": 3, "spectra_run": 3, "spectra_delta": 3, "curvature_run": 3,
                                          "summarize_runs": 1, "summarize_spectra": 1, "summarize_diversity": 1,
                                          "compare": 1, "answer": 1, "plots": 1, "summary_md": 1, "all": 1,
                                          "total": 20}
    assert "dropout_0.3" in result.stdout and "dropout_0.5/seed0/metrics.json" not in _job_outputs(result.stdout)


def _job_outputs(dry_run_output: str) -> str:
    return "\n".join(line for line in dry_run_output.splitlines() if line.strip().startswith("output:"))


def test_second_run_does_nothing(smoke):
    workdir, config = smoke
    result = snakemake(workdir, "--cores", "2", "--configfile", str(config))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_the_learning_rate_reruns_only_the_fine_tunes(smoke):
    workdir, config = smoke
    changed = write_config(workdir / "lr.yaml", config, train={"lr": 0.002})
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr
    jobs = job_counts(result.stdout)
    assert jobs.get("finetune") == 21 and jobs.get("spectra_run") == 21 and jobs.get("curvature_run") == 21
    assert jobs.get("summarize_runs") == 1 and jobs.get("summarize_spectra") == 1 and jobs.get("compare") == 1
    assert jobs.get("train_judge") == 1 and jobs.get("fidelity") == 1  # the judge fine-tunes with train.lr too
    assert not {"prepare_data", "corrupt", "pretrained", "spectra_reference", "diversity", "train_generator",
                "synthesize", "judge_split"} & set(jobs)


def test_restating_the_config_with_its_keys_reordered_reruns_nothing(smoke):
    workdir, config = smoke
    restated = workdir / "reordered.yaml"
    restated.write_text(yaml.safe_dump(reordered(yaml.safe_load(config.read_text())), sort_keys=False))
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(restated))
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize("train", [{"threads": 2}, {"num_workers": 2}, {"eval_batch_size": 32}],
                         ids=lambda t: next(iter(t)))
def test_execution_settings_rerun_no_job(smoke, train):
    workdir, config = smoke
    changed = write_config(workdir / f"{next(iter(train))}.yaml", config, train=train)
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_switching_off_delta_spectra_reruns_only_the_aggregates(smoke):
    workdir, config = smoke
    changed = write_config(workdir / "delta.yaml", config, spectra={"delta": False})
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr
    assert job_counts(result.stdout) == {"summarize_spectra": 1, "compare": 1, "answer": 1, "plots": 1,
                                          "summary_md": 1, "all": 1, "total": 6}


def test_every_result_file_is_readable_by_group_and_others(smoke):
    workdir, _ = smoke
    private = [str(path.relative_to(workdir)) for path in (workdir / "results").rglob("*")
               if path.is_file() and (path.stat().st_mode & 0o044) != 0o044]
    assert private == []


def test_model_rules_ask_for_a_gpu_exactly_when_the_device_is_cuda(tmp_path, fashion_root):
    """Every rule that runs a model requests a whole GPU (gpu=1, for SLURM) and its share of one (gpu_slots = 8 /
    train.jobs_per_gpu, counted locally) from train.device, and no other rule does."""
    requested = {}
    for device, jobs_per_gpu in (("cuda", 1), ("cuda", 4), ("cpu", 4)):
        config = write_config(tmp_path / f"{device}{jobs_per_gpu}.yaml", REPO / "configs" / "smoke.yaml",
                              train={"device": device, "jobs_per_gpu": jobs_per_gpu})
        result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config))
        assert result.returncode == 0, result.stderr
        requested[device, jobs_per_gpu] = _gpu_by_rule(result.stdout)
    model_rules = {"finetune", "train_judge", "train_generator", "synthesize", "fidelity", "diversity",
                   "curvature_reference", "curvature_run"}
    for key, slots in ((("cuda", 1), 8), (("cuda", 4), 2)):
        assert {rule for rule, asked in requested[key].items() if asked == {(1, slots)}} == model_rules
        assert all(asked == {(0, 0)} for rule, asked in requested[key].items() if rule not in model_rules)
    assert all(asked == {(0, 0)} for asked in requested["cpu", 4].values())


def _gpu_by_rule(dry_run_output: str) -> dict[str, set[tuple[int, int]]]:
    """rule -> the (gpu, gpu_slots) its jobs request, from a dry run's job listing (rule ...: / resources: ...)."""
    found, rule = {}, None
    for line in dry_run_output.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("resources:") and rule:
            asked = dict(part.strip().split("=", 1) for part in line.removeprefix("resources:").split(", "))
            found.setdefault(rule, set()).add((int(asked.get("gpu", 0)), int(asked.get("gpu_slots", 0))))
    return found


def test_default_config_dry_run_lists_the_grid(tmp_path, fashion_root):
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(REPO / "config.yaml"))
    assert result.returncode == 0, result.stderr
    jobs = job_counts(result.stdout)
    # 23 conditions x 3 seeds; diversity once per distinct training set (baseline, 10 diversity sources, 2 mixes)
    assert jobs == {"all": 1, "corrupt": 1, "finetune": 69, "prepare_data": 1, "pretrained": 3, "summarize_runs": 1,
                    "spectra_reference": 3, "spectra_run": 69, "spectra_delta": 69, "summarize_spectra": 1,
                    "diversity": 13,
                    "summarize_diversity": 1, "compare": 1, "answer": 1, "plots": 1, "summary_md": 1,
                    "synthesize": 1, "judge_split": 1, "train_judge": 1, "fidelity": 1, "summarize_fidelity": 1,
                    "total": 241}  # the shipped generator: no training; curvature off


def test_bad_config_stops_before_any_job_with_one_line(tmp_path, fashion_root):
    config = write_config(tmp_path / "bad.yaml", REPO / "configs" / "smoke.yaml", train={"epochs": 0})
    result = snakemake(tmp_path, "--cores", "1", "--configfile", str(config))
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "config error" in line]
    assert errors == ["weightscape: config error: train.epochs: 0 is out of range; allowed: >= 1"], output
    assert not (tmp_path / "results").exists()


def _g(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3g}"


def test_summary_opens_with_the_answer_table_and_both_claims_from_the_tables(smoke):
    workdir, _ = smoke
    answer = workdir / "results" / "answer"
    overview = pd.read_csv(answer / "overview.csv", keep_default_na=False).set_index("condition")
    verdicts = pd.read_csv(answer / "verdicts.csv").set_index("condition")
    claims = pd.read_csv(answer / "claims.csv", keep_default_na=False)
    text = (workdir / "results" / "summary.md").read_text()
    opening = text.split("# Details")[0]
    assert opening.splitlines()[2] == "## The answer (3 seeds per condition)"
    assert set(verdicts.index) == {"autoaugment", "noise_0.05", "replace_0.5"}  # every data condition, per lens
    assert len(verdicts) == 2 * 3
    assert list(overview.index) == ["baseline", *dict.fromkeys(verdicts.index)]
    states = ("like dropout", "like weight decay", "detected, within the margin", "no measurable effect",
              "inconclusive")
    for condition, row in overview.iterrows():
        line = next(line for line in opening.splitlines() if line.startswith(f"| **{condition}** |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] == answer_report.verdict_cell(row) and (row["verdict"] in states or condition == "baseline")
        assert cells[3] == row["dropout"] and cells[4] == row["weight_decay"]
        assert cells[5] == f"{_g(row['id_accuracy'])} ({_g(row['id_accuracy_ci_low'])} to "\
                           f"{_g(row['id_accuracy_ci_high'])})"
    for _, row in pd.read_csv(answer / "verdicts.csv").iterrows():
        lens = {"W": "W", "delta": "Delta W"}[row["lens"]]
        assert f"- **{row['condition']}** on {lens}: {row['verdict']} - {row['reason']}." in opening
    names = {"W": "W", "delta": "Delta W"}
    for _, claim in claims.iterrows():
        title = answer_report.CLAIM_TITLES[claim["claim"]]
        line = next(line for line in opening.splitlines() if line.startswith(f"**{title}: "))
        lens = claim["lens"] if isinstance(claim["lens"], str) else ""
        assert (f"{claim['statement']} on {names[lens]}" if lens else f": {claim['statement']}.**") in line
        assert claim["reason"][1:] in line
        if lens in ("delta", "") and isinstance(claim["detail"], str):  # the second sentence: the update lens's
            assert claim["detail"][1:] in line
    assert "sensitivity.csv" in opening or "depend on the margin" in opening
    additivity = pd.read_csv(answer / "additivity.csv")
    assert set(additivity["condition"]) == {"autoaugment_dropout_0.5"} and additivity["verdict"].notna().all()


def test_the_smoke_answer_has_both_lenses_and_the_tables_beside_the_verdict(smoke):
    workdir, _ = smoke
    answer = workdir / "results" / "answer"
    for name in ("effects", "verdicts", "placement", "groups", "confound", "predictors", "noise"):
        assert set(pd.read_csv(answer / f"{name}.csv")["lens"]) == {"W", "delta"}, name
    groups = pd.read_csv(answer / "groups.csv")
    assert {"stem", "early", "middle", "late", "head"} <= set(groups["group"])
    assert {"depthwise conv", "pointwise conv", "linear"} <= set(groups["group"])
    excluded = pd.read_csv(answer / "excluded.csv")
    assert excluded["reason"].str.contains("stats.min_evals").any()
    inert = pd.read_csv(answer / "inert_scale.csv")
    assert len(inert) == 1 and 0 < inert["n_inert"].iat[0] < inert["n_layers"].iat[0]
    power = pd.read_csv(answer / "power.csv")
    assert set(power["condition"]) <= set(pd.read_csv(answer / "verdicts.csv").query("verdict == 'inconclusive'")
                                          ["condition"])
    for name in ("where", "predictors"):
        assert (workdir / "results" / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    opening = (workdir / "results" / "summary.md").read_text().split("# Details")[0]
    assert "Two lenses look at each fine-tune" in opening and "Training loss against the effects on Delta W" in opening


def test_curvature_of_every_run_and_reference_is_in_runs_csv(smoke):
    workdir, _ = smoke
    runs = pd.read_csv(workdir / layout.RUNS_TABLE)
    for column in ("hessian_trace", "hessian_trace_se", "hessian_top_eig", "hessian_trace_pretrained"):
        assert runs[column].notna().all(), column
    assert (runs["hessian_top_eig"] > 0).all() and (runs["hessian_trace_se"] > 0).all()
    run = json.loads((run_dir(workdir, "baseline", 1) / "curvature.json").read_text())
    assert run["hessian_n_probes"] == 4 and run["sample_size"] == 20 and run["sample_seed"] == 1
    row = runs[(runs["condition"] == "baseline") & (runs["seed"] == 1)].iloc[0]
    assert row["hessian_trace"] == run["hessian_trace"]
    # seeds share their reference's value; references of other seeds differ (their heads do)
    assert runs.groupby("seed")["hessian_trace_pretrained"].nunique().eq(1).all()
    assert runs["hessian_trace_pretrained"].nunique() == 3
    caption = (workdir / "results" / "figures" / "curvature.txt").read_text()
    assert "Hessian" in caption and "across 3-3 seed(s)" in caption
    # ... and through the across-seed lens in the answer and the opening of summary.md
    effects = pd.read_csv(workdir / "results" / "answer" / "curvature.csv")
    families = effects[effects["level"] == "family"]
    assert set(families["outcome"]) == {"hessian_trace", "hessian_top_eig"} and (families["n_seeds"] == 3).all()
    assert "baseline" not in set(families["name"]) and {"dropout", "diversity"} <= set(families["name"])
    opening = (workdir / "results" / "summary.md").read_text().split("# Details")[0]
    line = next(line for line in opening.splitlines() if line.startswith("- **Hessian trace"))
    for _, row in families[families["outcome"] == "hessian_trace"].iterrows():
        assert f"{_g(row['mean'])} ({_g(row['ci_low'])} to {_g(row['ci_high'])}): {row['statement']}" in line, line
    # each data condition placed on the regularizers' dose-response of the trace, as in the table, where the
    # regularizer moves the trace measurably at all
    placed = effects[(effects["outcome"] == "hessian_trace") & (effects["name"] == "autoaugment")].iloc[0]
    assert isinstance(placed["dropout_position"], str) and isinstance(placed["weight_decay_position"], str)
    for regularizer in ("dropout", "weight_decay"):
        if placed[f"{regularizer}_moves"]:
            assert "Equivalent strength: " in line, line
        else:
            assert "No level of" in line and regularizer.replace("_", " ") in line.split("No level of")[1], line


def test_changing_curvature_settings_reruns_no_fine_tune(smoke):
    workdir, config = smoke
    changed = write_config(workdir / "curvature.yaml", config, curvature={"n_probes": 6})
    result = snakemake(workdir, "-n", "--cores", "2", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr
    jobs = job_counts(result.stdout)
    assert jobs.get("curvature_run") == 21 and jobs.get("curvature_reference") == 3
    assert not {"finetune", "spectra_run", "diversity", "synthesize", "train_judge"} & set(jobs)
