"""Adapter: rule summarize_diversity -> weightscape.diversity.diversity_table."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.runtime import job_logging

with job_logging(snakemake.log[0]):
    from weightscape.diversity import diversity_table
    from weightscape.io import write_csv

    write_csv(snakemake.output[0], diversity_table(snakemake.input, snakemake.params.conditions))
