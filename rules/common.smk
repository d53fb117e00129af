# Helpers only (no rules): config validation, the grid, and the per-rule config slices passed as params.
import os
import re
import sys

from weightscape.config import ConfigError, expand_conditions, validate_config


def resolve_shipped_paths(config):
    """Generator directories given relative to the workflow (the shipped resources/) also work when snakemake runs
    in another working directory (--directory): a relative path missing there is taken from the workflow's.
    """
    for generator in config.get("generators") or []:
        path = generator.get("weights") if isinstance(generator, dict) else None
        if (
            isinstance(path, str)
            and not os.path.isabs(path)
            and not os.path.exists(path)
        ):
            shipped = os.path.join(workflow.basedir, path)
            if os.path.exists(shipped):
                generator["weights"] = shipped


resolve_shipped_paths(config)
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
    """A wildcard constraint matching exactly the declared names (none declared: matches nothing)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    dataset=one_of(DATASETS),
    model=one_of(MODELS),
    condition=one_of(CONDITIONS),
    seed=r"\d+",
    corruption=one_of(config["ood"]["corruptions"]),
    generator=one_of(g["name"] for g in config["generators"]),


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


def reference_file(name, model="{model}"):
    """A file of the pretrained reference of the first seed: diversity is measured in its embedding space,
    which does not depend on the seed of the new head."""
    return "results/models/{model}/{{dataset}}/seed{seed}/{name}".format(
        model=model, seed=SEEDS[0], name=name
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


GENERATORS = {generator["name"]: generator for generator in config["generators"]}


def generator_dir(wildcards):
    """The generator a synthesize job samples from: the configured directory (e.g. the shipped one) or the one
    rule train_generator writes."""
    weights = GENERATORS[wildcards.generator]["weights"]
    if weights is None:
        return "results/generators/{dataset}/{generator}".format(**wildcards)
    return weights


def generator_files(wildcards):
    kind = GENERATORS[wildcards.generator]["kind"]
    if kind != "ddpm":
        return []
    directory = generator_dir(wildcards)
    return [f"{directory}/unet.safetensors", f"{directory}/generator.json"]


# Generators some synthetic condition uses (only these are sampled and judged).
USED_GENERATORS = list(
    dict.fromkeys(c["mix"]["generator"] for c in CONDITIONS.values() if c["mix"])
)
# The judge of class consistency: the first model's reference fine-tuned on more real images (rule train_judge).
JUDGE_MODEL = next(iter(MODELS))


def judge_file(name):
    return "results/models/{model}/{{dataset}}/judge/{name}".format(
        model=JUDGE_MODEL, name=name
    )


def synthetic_files(wildcards):
    """The synthetic images a condition mixes in (none for non-synthetic conditions)."""
    mix = CONDITIONS[wildcards.condition]["mix"]
    if not mix:
        return []
    return [
        "results/synthetic/{dataset}/{generator}/train.npz".format(
            dataset=wildcards.dataset, generator=mix["generator"]
        )
    ]
