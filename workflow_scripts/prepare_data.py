"""Adapter: rule prepare_data -> weightscape.data.prepare.prepare_dataset."""
from pathlib import Path

from weightscape.runtime import job_logging, pin_threads

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.data.prepare import prepare_dataset

    prepare_dataset(snakemake.params.dataset, Path(snakemake.output.classes).parent)
