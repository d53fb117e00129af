"""Adapter: rule train_judge -> weightscape.runs.train_judge."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.io import read_json
from weightscape.runtime import job_logging, pin_threads, progress
from weightscape.settings import Execution, Settings

with job_logging(snakemake.log[0]) as log_stream:
    pin_threads(snakemake.threads)
    from weightscape.runs import JudgeOutputs, train_judge

    settings, i = Settings.from_config(snakemake.config), snakemake.input
    train_judge(reference=i.reference, reference_info=i.reference_info, judge_npz=i.judge_train, test_npz=i.test,
                classes=read_json(i.classes)["classes"], train=settings.train,
                judge=settings.sections["fidelity"]["judge"],
                execution=Execution.from_config(snakemake.config, threads=snakemake.threads),
                outputs=JudgeOutputs(**dict(snakemake.output.items())),
                progress=lambda it: progress(it, log_stream, desc="epochs"))
