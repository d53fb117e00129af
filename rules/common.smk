# Helpers only (no rules): config validation, the grid, and the per-rule config slices passed as params.
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
