# Helpers only (no rules): config validation, the grid, and the per-rule config slices passed as params.
import os
import re
import sys

from weightscape.config import ConfigError, expand_conditions, validate_config

try:
    validate_config(config)
except ConfigError as error:
    sys.exit(f"weightscape: config error: {error}")

DATASETS = {dataset["name"]: dataset for dataset in config["datasets"]}
MODELS = {model["name"]: model for model in config["models"]}
CONDITIONS = {condition["name"]: condition for condition in expand_conditions(config)}
SEEDS = config["seeds"]
RUNS = [
    {"dataset": d, "model": m, "condition": c, "seed": s}
    for d in DATASETS
    for m in MODELS
    for c in CONDITIONS
    for s in SEEDS
]


def one_of(names):
    """A wildcard constraint matching exactly the declared names."""
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    dataset=one_of(DATASETS),
    model=one_of(MODELS),
    condition=one_of(CONDITIONS),
    seed=r"\d+",
    corruption=one_of(config["ood"]["corruptions"]),


def run_file(run, name):
    """A file of one fine-tuning run, e.g. run_file(run, "metrics.json")."""
    return "results/runs/{dataset}/{model}/{condition}/seed{seed}/{name}".format(
        name=name, **run
    )


def ood_files(wildcards):
    return expand(
        "results/data/{dataset}/ood/{corruption}.npz",
        dataset=wildcards.dataset,
        corruption=config["ood"]["corruptions"],
    )


REFERENCES = [
    {"dataset": d, "model": m, "seed": s}
    for d in DATASETS
    for m in MODELS
    for s in SEEDS
]


def spectra_entries():
    """(layers.parquet path, identity) of every analysed model: each reference, each run, each delta."""
    entries = [
        (
            "results/models/{model}/{dataset}/seed{seed}/spectra/layers.parquet".format(
                **ref
            ),
            {
                **ref,
                "condition": "pretrained",
                "family": "pretrained",
                "stage": "pretrained",
            },
        )
        for ref in REFERENCES
    ]
    stages = {"finetuned": "spectra", "delta": "spectra_delta"}
    if not config["spectra"]["delta"]:
        del stages["delta"]
    for run in RUNS:
        family = CONDITIONS[run["condition"]]["family"]
        for stage, folder in stages.items():
            path = run_file(run, os.path.join(folder, "layers.parquet"))
            entries.append((path, {**run, "family": family, "stage": stage}))
    return entries


def spectra_tables(wildcards):
    return [path for path, _ in spectra_entries()]


def spectra_table_keys():
    return [key for _, key in spectra_entries()]


def reference_file(name):
    """A file of the pretrained reference of the first seed: diversity is measured in its embedding space,
    which does not depend on the seed of the new head."""
    return "results/models/{{model}}/{{dataset}}/seed{seed}/{name}".format(
        seed=SEEDS[0], name=name
    )


FIGURES = [
    "esd_overlay",
    "family_bars",
    "layer_lines",
    "quadrant",
    "outcome_bars",
    "accuracy_vs_vendi",
]


def esd_archives():
    """Eigenvalue archives of the ESD overlay (first dataset, model and seed): the pretrained reference and the
    first condition of every family."""
    ref = REFERENCES[0]
    archives = {
        "pretrained": "results/models/{model}/{dataset}/seed{seed}/spectra/eigenvalues.npz".format(
            **ref
        )
    }
    for condition in CONDITIONS.values():
        if condition["family"] not in archives:
            run = {**ref, "condition": condition["name"]}
            archives[condition["family"]] = run_file(run, "spectra/eigenvalues.npz")
    return archives
