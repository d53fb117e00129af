"""Adapter: rule pretrained -> weightscape.runs.make_reference."""
from weightscape.execution import job

with job(snakemake, __file__):
    from weightscape.runs import make_reference
    from weightscape.settings import Model

    make_reference(Model.from_params(snakemake.params.model), snakemake.input.classes,
                   int(snakemake.wildcards.seed), weights_out=snakemake.output.weights, info_out=snakemake.output.info)
