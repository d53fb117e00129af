rule prepare_data:
    output:
        **({"pool": f"{layout.DATA}/pool.npz"} if RESAMPLE else {}),
        train=f"{layout.DATA}/train.npz",
        val=f"{layout.DATA}/val.npz",
        test=f"{layout.DATA}/test.npz",
        classes=f"{layout.DATA}/classes.json",
    log:
        layout.log("prepare_data", "{dataset}"),
    benchmark:
        layout.benchmark("prepare_data", "{dataset}")
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
        test=f"{layout.DATA}/test.npz",
    output:
        expand(
            f"{layout.DATA}/ood/{{corruption}}.npz",
            dataset="{dataset}",
            corruption=config["ood"]["corruptions"],
        ),
    log:
        layout.log("corrupt", "{dataset}"),
    benchmark:
        layout.benchmark("corrupt", "{dataset}")
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
        f"{layout.DATA}/judge_train.npz",
    log:
        layout.log("judge_split", "{dataset}"),
    benchmark:
        layout.benchmark("judge_split", "{dataset}")
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    params:
        source=lambda wildcards: DATASETS[wildcards.dataset].source_params(),
        per_class=SETTINGS.sections["fidelity"]["judge"]["train_per_class"],
        seed=SETTINGS.sections["fidelity"]["judge"]["seed"],
    script:
        "../workflow_scripts/judge_split.py"
