"""Adapter: rules curvature_reference / curvature_run -> weightscape.runs.measure_run_curvature."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.runtime import job_logging, pin_threads
from weightscape.settings import Execution, Settings

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.runs import measure_run_curvature

    i = snakemake.input
    measure_run_curvature(weights=i.weights, info=i.info, train_npz=i.train,
                          curvature=Settings.from_config(snakemake.config).curvature_params(),
                          seed=int(snakemake.wildcards.seed),
                          execution=Execution.from_config(snakemake.config, threads=snakemake.threads),
                          out_json=snakemake.output[0])
