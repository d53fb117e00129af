"""Adapter: rule summary_md -> weightscape.report.write_summary."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from pathlib import Path

from weightscape.runtime import job_logging

with job_logging(snakemake.log[0]):
    import pandas as pd

    from weightscape.answer import read_table
    from weightscape.report import write_summary

    i = snakemake.input
    write_summary(tests=pd.read_csv(i.tests), distances=pd.read_csv(i.distances), effects=pd.read_csv(i.effects),
                  outcomes=pd.read_csv(i.outcomes), out_md=snakemake.output[0],
                  answer={Path(path).stem: read_table(path) for path in i.answer},
                  fidelity=pd.read_csv(i.fidelity[0]) if i.fidelity else None)
