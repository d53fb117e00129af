"""Adapter: rule train_generator -> weightscape.synth.ddpm.train_ddpm."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from pathlib import Path

from weightscape.io import read_json
from weightscape.runtime import job_logging, pin_threads, progress
from weightscape.settings import Execution, Settings

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from weightscape.synth.ddpm import train_ddpm

    w = snakemake.wildcards
    generator = Settings.from_config(snakemake.config).generators[w.generator]
    train_ddpm(snakemake.input.train, read_json(snakemake.input.classes)["classes"], generator.train,
               Path(snakemake.output.weights).parent, snakemake.params.checkpoint,
               identity={"dataset": w.dataset, "generator": w.generator},
               progress=lambda it: progress(it, log_stream, desc="generator steps"),
               device=Execution.from_config(snakemake.config, threads=snakemake.threads).torch_device())
