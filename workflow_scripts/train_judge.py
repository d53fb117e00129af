"""Adapter: rule train_judge -> weightscape.runs.train_judge."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from weightscape.io import read_json
    from weightscape.runs import JudgeOutputs, train_judge
    from weightscape.settings import TrainSettings

    i, p = snakemake.input, snakemake.params
    train_judge(reference=i.reference, reference_info=i.reference_info, judge_npz=i.judge_train, test_npz=i.test,
                classes=read_json(i.classes)["classes"],
                train=TrainSettings.from_params({**p.train, "epochs": p.judge["epochs"]}), judge=p.judge,
                execution=run.execution, outputs=JudgeOutputs(**dict(snakemake.output.items())),
                progress=run.progress("epochs"))
