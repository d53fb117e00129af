"""Adapter: rule judge_split -> weightscape.data.prepare.prepare_judge_split."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from weightscape.data.prepare import prepare_judge_split

    p = snakemake.params
    source = {**p.source, "download": run.download(snakemake.wildcards.dataset)}
    prepare_judge_split(source, p.per_class, p.seed, snakemake.output[0])
