"""Adapter: rule answer -> weightscape.answer.answer (the across-seed verdicts and claims)."""
from weightscape.execution import job

with job(snakemake, __file__):
    from pathlib import Path

    import pandas as pd

    from weightscape.answer import answer, write_answer
    from weightscape.lenses import lens_deltas

    i = snakemake.input
    tables = answer(lens_deltas(pd.read_parquet(i.layers)), pd.read_csv(i.runs), diversity=pd.read_csv(i.diversity),
                    combined=snakemake.params.combined, config=snakemake.params.stats)
    write_answer(tables, Path(snakemake.output.verdicts).parent)
