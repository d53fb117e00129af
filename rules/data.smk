rule prepare_data:
    output:
        train="results/data/{dataset}/train.npz",
        val="results/data/{dataset}/val.npz",
        test="results/data/{dataset}/test.npz",
        classes="results/data/{dataset}/classes.json",
    log:
        "results/logs/prepare_data/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_data/{dataset}.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    params:
        dataset=lambda wildcards: DATASETS[wildcards.dataset].params(),
    script:
        "../workflow_scripts/prepare_data.py"


rule corrupt:
    input:
        test="results/data/{dataset}/test.npz",
    output:
        expand(
            "results/data/{{dataset}}/ood/{corruption}.npz",
            corruption=config["ood"]["corruptions"],
        ),
    log:
        "results/logs/corrupt/{dataset}.log",
    benchmark:
        "results/benchmarks/corrupt/{dataset}.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    params:
        ood=SETTINGS.sections["ood"],
    script:
        "../workflow_scripts/corrupt.py"


rule judge_split:
    output:
        "results/data/{dataset}/judge_train.npz",
    log:
        "results/logs/judge_split/{dataset}.log",
    benchmark:
        "results/benchmarks/judge_split/{dataset}.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    params:
        dataset=lambda wildcards: DATASETS[wildcards.dataset].params(),
        per_class=SETTINGS.sections["fidelity"]["judge"]["train_per_class"],
        seed=SETTINGS.sections["fidelity"]["judge"]["seed"],
    script:
        "../workflow_scripts/judge_split.py"
