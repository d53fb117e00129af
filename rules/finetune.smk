rule pretrained:
    input:
        classes=f"{layout.DATA}/classes.json",
    output:
        weights=f"{layout.REFERENCES}/weights.safetensors",
        info=f"{layout.REFERENCES}/model.json",
    log:
        layout.log("pretrained", layout.REFERENCE),
    benchmark:
        layout.benchmark("pretrained", layout.REFERENCE)
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="20m",
    params:
        model=lambda wildcards: MODELS[wildcards.model].params(),
    script:
        "../workflow_scripts/pretrained.py"


rule finetune:
    input:
        reference=f"{layout.REFERENCES}/weights.safetensors",
        reference_info=f"{layout.REFERENCES}/model.json",
        data=multiext(f"{layout.DATA}/", "train.npz", "val.npz", "test.npz"),
        train=training_file,
        ood=ood_files,
        synthetic=synthetic_files,
    output:
        weights=f"{layout.RUNS}/weights.safetensors",
        curve=f"{layout.RUNS}/curve.csv",
        metrics=f"{layout.RUNS}/metrics.json",
    log:
        layout.log("finetune", layout.RUN),
    benchmark:
        layout.benchmark("finetune", layout.RUN)
    conda:
        "../envs/weightscape.yaml"
    threads: SETTINGS.execution.threads
    resources:
        mem_mb=6000,
        runtime="4h",
        gpu=GPUS,
        gpu_slots=GPU_SLOTS,
    params:
        **(
            {"curvature": SETTINGS.finetune_curvature()}
            if SETTINGS.finetune_curvature()
            else {}
        ),
        condition=lambda wildcards: CONDITIONS[wildcards.condition].params(),
        train=SETTINGS.train.params(),
        subset=subset_params,
        # the curvature settings only where the fine-tune measures it (curvature.every_epoch)
        checkpoint=f"{layout.RUNS}/checkpoint.pt",
    script:
        "../workflow_scripts/finetune.py"
