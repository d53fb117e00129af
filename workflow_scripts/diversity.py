"""Adapter: rule diversity -> weightscape.runs.condition_diversity."""
from weightscape.runtime import job_logging, pin_threads

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.runs import condition_diversity

    condition_diversity(snakemake.input.train, snakemake.input.weights, snakemake.input.info,
                        snakemake.params.condition, snakemake.params.diversity, snakemake.output[0],
                        synthetic_npz=(snakemake.input.synthetic or [None])[0])
