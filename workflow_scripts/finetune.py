"""Adapter: rule finetune -> weightscape.runs.finetune_run."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from pathlib import Path

from weightscape.runtime import job_logging, pin_threads, progress
from weightscape.settings import Execution, Settings

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from weightscape.runs import RunOutputs, finetune_run

    settings, i, w = Settings.from_config(snakemake.config), snakemake.input, snakemake.wildcards
    finetune_run(reference=i.reference, reference_info=i.reference_info, data_dir=Path(i.data[0]).parent,
                 ood_files=i.ood, synthetic_npz=(i.synthetic or [None])[0], condition=settings.conditions[w.condition],
                 train=settings.train, seed=int(w.seed),
                 execution=Execution.from_config(snakemake.config, threads=snakemake.threads),
                 outputs=RunOutputs(**dict(snakemake.output.items())), checkpoint=snakemake.params.checkpoint,
                 curvature=settings.finetune_curvature(),
                 progress=lambda it: progress(it, log_stream, desc="epochs"))
