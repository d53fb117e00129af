"""Adapter: rule summarize_diversity -> weightscape.diversity.diversity_table."""
from weightscape.execution import job

with job(snakemake, __file__):
    from weightscape.diversity import diversity_table
    from weightscape.io import write_csv

    write_csv(snakemake.output[0], diversity_table(snakemake.input, snakemake.params.conditions))
