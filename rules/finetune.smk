rule pretrained:
    input:
        classes="results/data/{dataset}/classes.json",
    output:
        weights="results/models/{model}/{dataset}/seed{seed}/weights.safetensors",
        info="results/models/{model}/{dataset}/seed{seed}/model.json",
    log:
        "results/logs/pretrained/{model}/{dataset}/seed{seed}.log",
    benchmark:
        "results/benchmarks/pretrained/{model}/{dataset}/seed{seed}.tsv"
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
        reference="results/models/{model}/{dataset}/seed{seed}/weights.safetensors",
        reference_info="results/models/{model}/{dataset}/seed{seed}/model.json",
        data=multiext("results/data/{dataset}/", "train.npz", "val.npz", "test.npz"),
        ood=ood_files,
        synthetic=synthetic_files,
    output:
        weights="results/runs/{dataset}/{model}/{condition}/seed{seed}/weights.safetensors",
        curve="results/runs/{dataset}/{model}/{condition}/seed{seed}/curve.csv",
        metrics="results/runs/{dataset}/{model}/{condition}/seed{seed}/metrics.json",
    log:
        "results/logs/finetune/{dataset}/{model}/{condition}/seed{seed}.log",
    benchmark:
        "results/benchmarks/finetune/{dataset}/{model}/{condition}/seed{seed}.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: SETTINGS.execution.threads
    resources:
        mem_mb=6000,
        runtime="4h",
        gpu=GPUS,
    params:
        **(
            {"curvature": SETTINGS.finetune_curvature()}
            if SETTINGS.finetune_curvature()
            else {}
        ),
        condition=lambda wildcards: CONDITIONS[wildcards.condition].params(),
        train=SETTINGS.train.params(),
        # the curvature settings only where the fine-tune measures it (curvature.every_epoch)
        checkpoint="results/runs/{dataset}/{model}/{condition}/seed{seed}/checkpoint.pt",
    script:
        "../workflow_scripts/finetune.py"
