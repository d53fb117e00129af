"""Adapter: rule summarize_spectra -> weightscape.tables.write_layers_table."""
from weightscape.execution import job

with job(snakemake, __file__):
    from weightscape.tables import write_layers_table

    write_layers_table(snakemake.input.layers, snakemake.params.families, snakemake.output.layers)
