"""Adapter: rule synthesize -> weightscape.synth.generate.synthesize."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.io import read_json
from weightscape.runtime import job_logging, pin_threads, progress
from weightscape.settings import Execution, Settings

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from weightscape.synth.generate import synthesize

    settings = Settings.from_config(snakemake.config)
    synthesize(settings.generators[snakemake.wildcards.generator], snakemake.params.directory,
               read_json(snakemake.input.classes)["classes"], snakemake.input.train,
               device=Execution.from_config(snakemake.config, threads=snakemake.threads).torch_device(),
               out_images=snakemake.output.images, out_info=snakemake.output.info,
               progress=lambda it: progress(it, log_stream, desc="batches"))
