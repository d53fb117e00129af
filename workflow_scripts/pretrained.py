"""Adapter: rule pretrained -> weightscape.runs.make_reference."""
from weightscape.runtime import job_logging, pin_threads

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.runs import make_reference

    make_reference(snakemake.params.model, snakemake.input.classes, int(snakemake.wildcards.seed),
                   snakemake.output.weights, snakemake.output.info)
