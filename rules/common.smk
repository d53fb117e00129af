# Helpers only (no rules): config validation, the grid, the results layout and the per-rule config slices passed
# as params.
import os
import re
import sys

from weightscape import layout
from weightscape.answer import TABLES as ANSWER_TABLES
from weightscape.config import ConfigError, validated_settings
from weightscape.execution import forkserver, gpus, scheduler

# Snakemake's scheduler, left alone, wakes once a second per job started so far (weightscape.execution.scheduler)
scheduler.install()


onstart:
    # a run that sends its jobs to a cluster leaves only the localrules here, on a login node: no fork server there
    forkserver.off_when_jobs_go_to_a_cluster(workflow.executor_plugin)


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
    # the validated config as typed settings, built once per parse (weightscape.settings): each object's params()
    # is what a rule gets as params, so only a setting that can change a result reruns a job
    SETTINGS = validated_settings(config)
except ConfigError as error:
    sys.exit(f"weightscape: config error: {error}")

DATASETS = SETTINGS.datasets
MODELS = SETTINGS.models
CONDITIONS = SETTINGS.conditions
GENERATORS = SETTINGS.generators
SEEDS = list(SETTINGS.seeds)
# Rules that run a model ask for a GPU exactly when train.device is cuda; each job picks its device from the same
# setting (Execution.torch_device), so `device: cpu` keeps every rule on the CPU even where a GPU is visible.
# `gpu` = whole GPUs (SLURM's --gpus); `gpu_slots` = the job's share of a GPU, 8 / train.jobs_per_gpu of its 8 slots,
# which the default profile limits to one GPU (weightscape.execution.gpus; the job then takes a place on one GPU).
GPUS = SETTINGS.execution.gpus
GPU_SLOTS = gpus.slots_per_job(
    SETTINGS.execution.device, SETTINGS.execution.jobs_per_gpu
)
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
    generator=one_of(GENERATORS),


def run_file(run, name):
    """A file of one fine-tuning run, e.g. run_file(run, "metrics.json")."""
    return f"{layout.RUNS}/{name}".format(**run)


def reference_file(ref, name):
    """A file of one pretrained reference, e.g. reference_file(ref, "model.json")."""
    return f"{layout.REFERENCES}/{name}".format(**ref)


def ood_files(wildcards):
    return expand(
        f"{layout.DATA}/ood/{{corruption}}.npz",
        dataset=wildcards.dataset,
        corruption=config["ood"]["corruptions"],
    )


REFERENCES = [
    {"dataset": d, "model": m, "seed": s}
    for d in DATASETS
    for m in MODELS
    for s in SEEDS
]


def spectra_tables(wildcards):
    """Every analysed model's layers.parquet: each reference, each run and (spectra.delta) each run's Delta W; the
    summary reads each table's identity from its path (weightscape.layout.identity).
    """
    references = [reference_file(ref, "spectra/layers.parquet") for ref in REFERENCES]
    stages = ["finetuned", "delta"] if config["spectra"]["delta"] else ["finetuned"]
    folders = [layout.SPECTRA[stage] for stage in stages]
    runs = [
        run_file(run, os.path.join(folder, "layers.parquet"))
        for run in RUNS
        for folder in folders
    ]
    return references + runs


def condition_families():
    """condition -> family, the one fact the layers table needs that is not in a spectra file's path."""
    return {name: condition.family for name, condition in sorted(CONDITIONS.items())}


def training_file(wildcards):
    """The training images of a job that trains on a seed's data: train.npz, or with the dataset's
    resample_per_seed the pool each seed draws its own subset from (Dataset.subset_params).
    """
    name = "pool.npz" if DATASETS[wildcards.dataset].resample_per_seed else "train.npz"
    return f"{layout.DATA}/{name}".format(dataset=wildcards.dataset)


def subset_params(wildcards):
    return DATASETS[wildcards.dataset].subset_params()


#: does any dataset draw each seed's training subset anew (prepare_data then also writes its pool)
RESAMPLE = any(d.resample_per_seed for d in DATASETS.values())


def first_seed_reference(name, model="{model}"):
    """A file of the pretrained reference of the first seed (a pattern of {dataset}): diversity is measured in its
    embedding space, which does not depend on the seed of the new head."""
    return reference_file(
        {"dataset": "{dataset}", "model": model, "seed": SEEDS[0]}, name
    )


CURVATURE = config["curvature"]["enabled"]
# the figures of rule plots (weightscape.layout.FIGURES), curvature's where it is measured
FIGURES = list(layout.FIGURES)
if CURVATURE:
    FIGURES.append(layout.CURVATURE_FIGURES[0])
if CURVATURE and config["curvature"]["every_epoch"]:
    FIGURES.append(layout.CURVATURE_FIGURES[1])


def trajectory_curves(wildcards):
    """Every run's curve.csv when the fine-tunes record curvature after each epoch (none otherwise)."""
    if "curvature_trajectory" not in FIGURES:
        return []
    return [run_file(run, "curve.csv") for run in RUNS]


def curvature_files():
    """Every run's and every reference's curvature.json (none when curvature is off)."""
    if not CURVATURE:
        return []
    references = [reference_file(ref, "curvature.json") for ref in REFERENCES]
    return references + [run_file(run, "curvature.json") for run in RUNS]


def training_data_sources():
    """condition -> the first condition (grid order) that trains on the same data (transforms and synthetic mix):
    dropout, weight-decay and combined conditions share their data's Vendi scores, measured once.
    """
    first = {}
    sources = {}
    for name, condition in CONDITIONS.items():
        signature = repr(condition.data_params())
        sources[name] = first.setdefault(signature, name)
    return sources


DIVERSITY_SOURCES = training_data_sources()


def combined_pairs():
    """combined condition -> [its data condition, its regularizer condition], for the additivity statistics."""
    return {
        name: list(condition.combines)
        for name, condition in sorted(CONDITIONS.items())
        if condition.combines
    }


def esd_archives():
    """Eigenvalue archives of the ESD overlay (first dataset, model and seed): the pretrained reference and the
    first condition of every family."""
    ref = REFERENCES[0]
    archives = {"pretrained": reference_file(ref, "spectra/eigenvalues.npz")}
    for condition in CONDITIONS.values():
        if condition.family not in archives:
            run = {**ref, "condition": condition.name}
            archives[condition.family] = run_file(run, "spectra/eigenvalues.npz")
    return archives


def generator_dir(wildcards):
    """The generator a synthesize job samples from: the configured directory (e.g. the shipped one) or the one
    rule train_generator writes."""
    weights = GENERATORS[wildcards.generator].weights
    if weights is None:
        return layout.GENERATORS.format(**wildcards)
    return weights


def generator_files(wildcards):
    kind = GENERATORS[wildcards.generator].kind
    if kind != "ddpm":
        return []
    directory = generator_dir(wildcards)
    return [f"{directory}/unet.safetensors", f"{directory}/generator.json"]


# Generators some synthetic condition uses (only these are sampled and judged).
USED_GENERATORS = list(
    dict.fromkeys(c.mix.generator for c in CONDITIONS.values() if c.mix)
)
# The judge of class consistency: the first model's reference fine-tuned on more real images (rule train_judge).
JUDGE_MODEL = next(iter(MODELS))


def judge_file(name):
    """A file of the judge (a pattern of {dataset})."""
    return f"{layout.JUDGE}/{name}".format(dataset="{dataset}", model=JUDGE_MODEL)


def synthetic_files(wildcards):
    """The synthetic images a condition mixes in (none for non-synthetic conditions)."""
    mix = CONDITIONS[wildcards.condition].mix
    if not mix:
        return []
    return [
        f"{layout.SYNTHETIC}/train.npz".format(
            dataset=wildcards.dataset, generator=mix.generator
        )
    ]
