rule curvature_reference:
    input:
        weights="results/models/{model}/{dataset}/seed{seed}/weights.safetensors",
        info="results/models/{model}/{dataset}/seed{seed}/model.json",
        train="results/data/{dataset}/train.npz",
    output:
        "results/models/{model}/{dataset}/seed{seed}/curvature.json",
    log:
        "results/logs/curvature_reference/{model}/{dataset}/seed{seed}.log",
    benchmark:
        "results/benchmarks/curvature_reference/{model}/{dataset}/seed{seed}.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime="1h",
        gpu=GPUS,
    params:
        curvature=SETTINGS.curvature_params(),
    script:
        "../workflow_scripts/curvature.py"


rule curvature_run:
    input:
        weights="results/runs/{dataset}/{model}/{condition}/seed{seed}/weights.safetensors",
        info="results/models/{model}/{dataset}/seed{seed}/model.json",
        train="results/data/{dataset}/train.npz",
    output:
        "results/runs/{dataset}/{model}/{condition}/seed{seed}/curvature.json",
    log:
        "results/logs/curvature_run/{dataset}/{model}/{condition}/seed{seed}.log",
    benchmark:
        "results/benchmarks/curvature_run/{dataset}/{model}/{condition}/seed{seed}.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime="1h",
        gpu=GPUS,
    params:
        curvature=SETTINGS.curvature_params(),
    script:
        "../workflow_scripts/curvature.py"
