"""Adapter: rule diversity -> weightscape.runs.condition_diversity."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.runtime import job_logging, pin_threads
from weightscape.settings import Execution, Settings

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.runs import condition_diversity

    settings, i = Settings.from_config(snakemake.config), snakemake.input
    condition_diversity(train_npz=i.train, reference=i.weights, reference_info=i.info,
                        condition=settings.conditions[snakemake.wildcards.condition],
                        diversity=settings.sections["diversity"], seeds=list(settings.seeds),
                        execution=Execution.from_config(snakemake.config, threads=snakemake.threads),
                        out_json=snakemake.output[0], synthetic_npz=(i.synthetic or [None])[0])
