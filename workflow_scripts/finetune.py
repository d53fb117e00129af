"""Adapter: rule finetune -> weightscape.runs.finetune_run."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from pathlib import Path

    from weightscape.runs import RunOutputs, finetune_run
    from weightscape.settings import Condition, TrainSettings

    i, p = snakemake.input, snakemake.params
    finetune_run(reference=i.reference, reference_info=i.reference_info, data_dir=Path(i.data[0]).parent,
                 ood_files=i.ood, synthetic_npz=(i.synthetic or [None])[0],
                 condition=Condition.from_params(p.condition), train=TrainSettings.from_params(p.train),
                 seed=int(snakemake.wildcards.seed), execution=run.execution,
                 outputs=RunOutputs(**dict(snakemake.output.items())), checkpoint=p.checkpoint,
                 curvature=p.get("curvature"), subset=p.subset, progress=run.progress("epochs"))
