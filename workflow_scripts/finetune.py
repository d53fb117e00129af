"""Adapter: rule finetune -> weightscape.runs.finetune_run."""
from pathlib import Path

from weightscape.runtime import job_logging, pick_device, pin_threads, progress

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from weightscape.runs import finetune_run

    train = snakemake.params.train
    finetune_run(snakemake.input.reference, snakemake.input.reference_info, Path(snakemake.input.data[0]).parent,
                 snakemake.input.ood, snakemake.params.condition, train, int(snakemake.wildcards.seed),
                 pick_device(train["device"]), snakemake.output.weights, snakemake.output.curve,
                 snakemake.output.metrics, progress=lambda it: progress(it, log_stream, desc="epochs"),
                 synthetic_npz=(snakemake.input.synthetic or [None])[0], checkpoint=snakemake.params.checkpoint)
