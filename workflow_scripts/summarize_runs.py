"""Adapter: rule summarize_runs -> weightscape.tables.write_runs_table."""
from weightscape.execution import job

with job(snakemake, __file__):
    from weightscape.tables import write_runs_table

    write_runs_table(snakemake.input.metrics, snakemake.output.runs, curvature_files=snakemake.input.curvature)
