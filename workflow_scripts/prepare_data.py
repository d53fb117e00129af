"""Adapter: rule prepare_data -> weightscape.data.prepare.prepare_dataset."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from pathlib import Path

    from weightscape.data.prepare import prepare_dataset
    from weightscape.settings import Dataset

    dataset = Dataset.from_params(snakemake.params.dataset, download=run.download(snakemake.wildcards.dataset))
    prepare_dataset(dataset, Path(snakemake.output.classes).parent)
