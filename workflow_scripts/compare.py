"""Adapter: rule compare -> weightscape.stats.compare."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from pathlib import Path

from weightscape.runtime import job_logging

with job_logging(snakemake.log[0]):
    import pandas as pd

    from weightscape.io import atomic_path
    from weightscape.stats import compare

    tables = compare(pd.read_parquet(snakemake.input.layers), pd.read_csv(snakemake.input.runs),
                     out_dir=Path(snakemake.output.effects).parent, **snakemake.params.compare)
    with atomic_path(snakemake.output.deltas) as tmp:
        tables["layer_deltas"].to_parquet(tmp, index=False)
