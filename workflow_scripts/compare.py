"""Adapter: rule compare -> weightscape.stats.compare."""
from weightscape.execution import job

with job(snakemake, __file__):
    from pathlib import Path

    import pandas as pd

    from weightscape.io import atomic_path
    from weightscape.stats import compare

    tables = compare(pd.read_parquet(snakemake.input.layers), pd.read_csv(snakemake.input.runs),
                     out_dir=Path(snakemake.output.effects).parent, **snakemake.params.compare)
    with atomic_path(snakemake.output.deltas) as tmp:
        tables["layer_deltas"].to_parquet(tmp, index=False)
