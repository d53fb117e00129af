# weightscape: does data diversity act on a network's weights like a regularizer - and like which one?
# The grid (datasets x models x conditions x seeds) is fully known from the config; see README.md.
from snakemake.utils import min_version

min_version("9.20")


configfile: "config.yaml"


# Small table jobs run on the submitting machine: on a cluster each job costs a scheduler round trip.
localrules:
    all,
    summarize_runs,
    summarize_spectra,
    summarize_diversity,
    summarize_fidelity,
    answer,
    summary_md,


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/generator.smk"
include: "rules/finetune.smk"
include: "rules/spectra.smk"
include: "rules/curvature.smk"
include: "rules/diversity.smk"
include: "rules/compare.smk"
include: "rules/answer.smk"
include: "rules/report.smk"
include: "rules/summary.smk"


rule all:
    default_target: True
    input:
        layout.RUNS_TABLE,
        layout.LAYERS_TABLE,
        layout.DIVERSITY_TABLE,
        layout.SUMMARY,
        expand(layout.FIGURE, name=[f"{name}.png" for name in FIGURES]),
        layout.FIDELITY_TABLE if USED_GENERATORS else [],
