"""Adapter: rule diversity -> weightscape.runs.condition_diversity."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from weightscape.runs import condition_diversity
    from weightscape.settings import TrainingData

    i, p = snakemake.input, snakemake.params
    condition_diversity(train_npz=i.train, reference=i.weights, reference_info=i.info,
                        condition=snakemake.wildcards.condition, data=TrainingData.from_params(p.data),
                        diversity=p.diversity, seeds=p.seeds, execution=run.execution, out_json=snakemake.output[0],
                        synthetic_npz=(i.synthetic or [None])[0], subset=p.subset)
