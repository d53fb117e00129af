"""Adapter: rule corrupt -> weightscape.data.ood.make_ood_sets."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from pathlib import Path

    from weightscape.data.ood import make_ood_sets

    out_files = {Path(path).stem: path for path in snakemake.output}
    make_ood_sets(snakemake.input.test, snakemake.params.ood, out_files, progress=run.progress("corruptions"))
