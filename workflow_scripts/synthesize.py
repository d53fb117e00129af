"""Adapter: rule synthesize -> weightscape.synth.generate.synthesize."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from weightscape.io import read_json
    from weightscape.settings import Generator
    from weightscape.synth.generate import synthesize

    i, o = snakemake.input, snakemake.output
    synthesize(Generator.from_params(snakemake.params.generator, threads=snakemake.threads),
               snakemake.params.directory, read_json(i.classes)["classes"], i.train,
               device=run.execution.torch_device(), out_images=o.images, out_info=o.info,
               progress=run.progress("batches"))
