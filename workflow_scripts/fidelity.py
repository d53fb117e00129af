"""Adapter: rule fidelity -> weightscape.synth.fidelity.measure_fidelity."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from weightscape.io import read_json
    from weightscape.synth.fidelity import measure_fidelity

    i, w = snakemake.input, snakemake.wildcards
    measure_fidelity(synthetic_npz=i.synthetic, real_train_npz=i.real_train, real_test_npz=i.real_test,
                     classes=read_json(i.classes)["classes"], judge_weights=i.judge, judge_info=i.judge_info,
                     judge_metrics=i.judge_metrics, backbone_weights=i.backbone, backbone_info=i.backbone_info,
                     diversity=snakemake.params.diversity, device=run.execution.torch_device(),
                     out_json=snakemake.output[0], identity={"dataset": w.dataset, "generator": w.generator})
