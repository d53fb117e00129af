"""Adapter: rule prepare_data -> weightscape.data.prepare.prepare_dataset."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from pathlib import Path

from weightscape.runtime import job_logging, pin_threads
from weightscape.settings import Settings

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.data.prepare import prepare_dataset

    dataset = Settings.from_config(snakemake.config).datasets[snakemake.wildcards.dataset]
    prepare_dataset(dataset, Path(snakemake.output.classes).parent)
