"""Adapter: rules spectra_reference / spectra_run / spectra_delta -> weightscape.spectra.outputs.write_spectra."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.runtime import job_logging, pin_threads, progress
from weightscape.settings import Settings

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from weightscape.checkpoints import load_checkpoint
    from weightscape.spectra.outputs import write_spectra

    model, info = load_checkpoint(snakemake.input.weights, snakemake.input.info)
    base = load_checkpoint(snakemake.input.base, snakemake.input.info)[0] if "base" in snakemake.input.keys() else None
    o = snakemake.output
    write_spectra(model, Settings.from_config(snakemake.config).spectra_params(), o.csv, o.parquet, o.eigenvalues,
                  base_model=base, image_size=info["image_size"],
                  progress=lambda it, **kw: progress(it, log_stream, desc="layers", **kw))
