"""Adapter: rule pretrained -> weightscape.runs.make_reference."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.runtime import job_logging, pin_threads
from weightscape.settings import Settings

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.runs import make_reference

    model = Settings.from_config(snakemake.config).models[snakemake.wildcards.model]
    make_reference(model, snakemake.input.classes, int(snakemake.wildcards.seed),
                   weights_out=snakemake.output.weights, info_out=snakemake.output.info)
