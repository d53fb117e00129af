"""Adapter: rule summary_md -> weightscape.report.write_summary."""
from weightscape.execution import job

with job(snakemake, __file__):
    from pathlib import Path

    import pandas as pd

    from weightscape.answer import read_table
    from weightscape.report import write_summary

    i = snakemake.input
    write_summary(tests=pd.read_csv(i.tests), distances=pd.read_csv(i.distances), effects=pd.read_csv(i.effects),
                  outcomes=pd.read_csv(i.outcomes), out_md=snakemake.output[0],
                  answer={Path(path).stem: read_table(path) for path in i.answer},
                  fidelity=pd.read_csv(i.fidelity[0]) if i.fidelity else None,
                  resample_per_seed=snakemake.params.resample_per_seed)
