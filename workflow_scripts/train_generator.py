"""Adapter: rule train_generator -> weightscape.synth.ddpm.train_ddpm."""
from weightscape.io import read_json
from weightscape.runtime import job_logging, pick_device, pin_threads, progress

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from pathlib import Path

    from weightscape.synth.ddpm import train_ddpm

    train_ddpm(snakemake.input.train, read_json(snakemake.input.classes)["classes"], snakemake.params.train,
               Path(snakemake.output.weights).parent, snakemake.params.checkpoint,
               identity={"dataset": snakemake.wildcards.dataset, "generator": snakemake.wildcards.generator},
               progress=lambda it: progress(it, log_stream, desc="generator steps"), device=pick_device("auto"))
