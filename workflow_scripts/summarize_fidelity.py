"""Adapter: rule summarize_fidelity -> weightscape.synth.fidelity.fidelity_table."""
from weightscape.execution import job

with job(snakemake, __file__):
    from weightscape.io import write_csv
    from weightscape.synth.fidelity import fidelity_table

    write_csv(snakemake.output[0], fidelity_table(list(snakemake.input)))
