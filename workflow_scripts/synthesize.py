"""Adapter: rule synthesize -> weightscape.synth.generate.synthesize."""
from weightscape.io import read_json
from weightscape.runtime import job_logging, pick_device, pin_threads, progress

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from weightscape.synth.generate import synthesize

    synthesize(snakemake.params.generator, snakemake.params.directory, read_json(snakemake.input.classes)["classes"],
               snakemake.input.train, pick_device("auto"), snakemake.output.images, snakemake.output.info,
               progress=lambda it: progress(it, log_stream, desc="batches"))
