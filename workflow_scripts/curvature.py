"""Adapter: rules curvature_reference / curvature_run -> weightscape.runs.measure_run_curvature."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from weightscape.runs import measure_run_curvature

    i = snakemake.input
    measure_run_curvature(weights=i.weights, info=i.info, train_npz=i.train, curvature=snakemake.params.curvature,
                          seed=int(snakemake.wildcards.seed), execution=run.execution, out_json=snakemake.output[0],
                          subset=snakemake.params.subset)
