"""Adapter: rule summarize_spectra -> weightscape.tables.write_layers_table."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.runtime import job_logging

with job_logging(snakemake.log[0]):
    from weightscape.tables import write_layers_table

    write_layers_table(snakemake.input.layers, snakemake.params.families, snakemake.output.layers)
