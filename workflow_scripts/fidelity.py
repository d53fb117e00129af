"""Adapter: rule fidelity -> weightscape.synth.fidelity.measure_fidelity."""
from weightscape.forkserver import delegate

delegate(snakemake, __file__)  # run in a fork of the local preloaded server when there is one

from weightscape.io import read_json
from weightscape.runtime import job_logging, pin_threads
from weightscape.settings import Execution, Settings

with job_logging(snakemake.log[0]):
    pin_threads(snakemake.threads)
    from weightscape.synth.fidelity import measure_fidelity

    settings, i, w = Settings.from_config(snakemake.config), snakemake.input, snakemake.wildcards
    measure_fidelity(synthetic_npz=i.synthetic, real_train_npz=i.real_train, real_test_npz=i.real_test,
                     classes=read_json(i.classes)["classes"], judge_weights=i.judge, judge_info=i.judge_info,
                     judge_metrics=i.judge_metrics, backbone_weights=i.backbone, backbone_info=i.backbone_info,
                     diversity=settings.sections["diversity"],
                     device=Execution.from_config(snakemake.config, threads=snakemake.threads).torch_device(),
                     out_json=snakemake.output[0], identity={"dataset": w.dataset, "generator": w.generator})
