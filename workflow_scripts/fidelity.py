"""Adapter: rule fidelity -> weightscape.synth.fidelity.measure_fidelity."""
from weightscape.io import read_json
from weightscape.runtime import job_logging, pick_device, pin_threads

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.synth.fidelity import measure_fidelity

    i, w = snakemake.input, snakemake.wildcards
    diversity = snakemake.params.diversity
    measure_fidelity(i.synthetic, i.real_train, i.real_test, read_json(i.classes)["classes"], i.judge, i.judge_info,
                     i.judge_metrics, i.backbone, i.backbone_info, diversity["sample_size"], diversity["seed"], pick_device("auto"),
                     snakemake.output[0], identity={"dataset": w.dataset, "generator": w.generator})
