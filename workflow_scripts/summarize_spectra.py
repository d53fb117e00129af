"""Adapter: rule summarize_spectra -> weightscape.tables.write_layers_table."""
from weightscape.runtime import job_logging

with job_logging(snakemake.log[0]):
    from weightscape.tables import write_layers_table

    write_layers_table(snakemake.input.layers, snakemake.params.families, snakemake.output.layers)
