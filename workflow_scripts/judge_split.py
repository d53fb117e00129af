"""Adapter: rule judge_split -> weightscape.data.prepare.prepare_judge_split."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.runtime import job_logging, pin_threads
from weightscape.settings import Settings

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.data.prepare import prepare_judge_split

    settings = Settings.from_config(snakemake.config)
    judge = settings.sections["fidelity"]["judge"]
    prepare_judge_split(settings.datasets[snakemake.wildcards.dataset], judge["train_per_class"], judge["seed"],
                        snakemake.output[0])
