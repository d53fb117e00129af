"""Adapter: rule train_generator -> weightscape.synth.ddpm.train_ddpm."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from pathlib import Path

    from weightscape.io import read_json
    from weightscape.settings import Generator
    from weightscape.synth.ddpm import train_ddpm

    w = snakemake.wildcards
    settings = Generator.train_settings(snakemake.params.train, threads=snakemake.threads,
                                        checkpoint_every=run.checkpoint_every(w.generator))
    train_ddpm(snakemake.input.train, read_json(snakemake.input.classes)["classes"], settings,
               Path(snakemake.output.weights).parent, snakemake.params.checkpoint,
               identity={"dataset": w.dataset, "generator": w.generator}, progress=run.progress("generator steps"),
               device=run.execution.torch_device())
