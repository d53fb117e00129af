"""Adapter: rule train_judge -> weightscape.runs.train_judge."""
from weightscape.io import read_json
from weightscape.runtime import job_logging, pick_device, pin_threads, progress

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from weightscape.runs import train_judge

    i, o, p = snakemake.input, snakemake.output, snakemake.params
    train_judge(i.reference, i.reference_info, i.judge_train, i.test, read_json(i.classes)["classes"], p.train,
                p.judge, pick_device(p.train["device"]), o.weights, o.info, o.metrics,
                progress=lambda it: progress(it, log_stream, desc="epochs"))
