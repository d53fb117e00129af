"""Adapter: rule summarize_fidelity -> weightscape.synth.fidelity.fidelity_table."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.runtime import job_logging

with job_logging(snakemake.log[0]):
    from weightscape.io import write_csv
    from weightscape.synth.fidelity import fidelity_table

    write_csv(snakemake.output[0], fidelity_table(list(snakemake.input)))
