"""Adapter: rule corrupt -> weightscape.data.ood.make_ood_sets."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from pathlib import Path

from weightscape.runtime import job_logging, pin_threads, progress

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from weightscape.data.ood import make_ood_sets

    out_files = {Path(path).stem: path for path in snakemake.output}
    make_ood_sets(snakemake.input.test, snakemake.params.ood, out_files,
                  progress=lambda it: progress(it, log_stream, desc="corruptions"))
