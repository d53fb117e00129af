"""Adapter: rule summarize_runs -> weightscape.tables.write_runs_table."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.runtime import job_logging

with job_logging(snakemake.log[0]):
    from weightscape.tables import write_runs_table

    write_runs_table(snakemake.input.metrics, snakemake.output.runs, curvature_files=snakemake.input.curvature)
