"""Adapter: rule judge_split -> weightscape.data.prepare.prepare_judge_split."""
from weightscape.runtime import job_logging, pin_threads

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.data.prepare import prepare_judge_split

    p = snakemake.params
    prepare_judge_split(p.dataset, p.per_class, p.seed, snakemake.output[0])
