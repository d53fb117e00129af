rule train_generator:
    input:
        train="results/data/{dataset}/train.npz",
        classes="results/data/{dataset}/classes.json",
    output:
        weights="results/generators/{dataset}/{generator}/unet.safetensors",
        info="results/generators/{dataset}/{generator}/generator.json",
    log:
        "results/logs/train_generator/{dataset}/{generator}.log",
    benchmark:
        "results/benchmarks/train_generator/{dataset}/{generator}.tsv"
    priority: 10  # the synthetic images (and their fine-tunes) wait for it
    conda:
        "../envs/weightscape.yaml"
    threads: lambda wildcards: GENERATORS[wildcards.generator].train["threads"]
    resources:
        mem_mb=4000,
        runtime="24h",
        gpu=GPUS,
    params:
        train=lambda wildcards: GENERATORS[wildcards.generator].train_params(),
        checkpoint="results/generators/{dataset}/{generator}/checkpoint.pt",
    script:
        "../workflow_scripts/train_generator.py"


rule synthesize:
    input:
        generator=generator_files,
        classes="results/data/{dataset}/classes.json",
        train="results/data/{dataset}/train.npz",
    output:
        images="results/synthetic/{dataset}/{generator}/train.npz",
        info="results/synthetic/{dataset}/{generator}/generator.json",
    log:
        "results/logs/synthesize/{dataset}/{generator}.log",
    benchmark:
        "results/benchmarks/synthesize/{dataset}/{generator}.tsv"
    # one long job that synthetic fine-tunes wait for: start it first, so that it overlaps the other fine-tunes
    # instead of running alone at the end of the grid
    priority: 10
    conda:
        "../envs/weightscape.yaml"
    threads: lambda wildcards: GENERATORS[wildcards.generator].sample["threads"]
    resources:
        mem_mb=8000,
        runtime="4h",
        gpu=GPUS,
    params:
        generator=lambda wildcards: GENERATORS[wildcards.generator].sample_params(),
        directory=generator_dir,
    script:
        "../workflow_scripts/synthesize.py"


rule train_judge:
    input:
        reference=reference_file("weights.safetensors"),
        reference_info=reference_file("model.json"),
        judge_train="results/data/{dataset}/judge_train.npz",
        test="results/data/{dataset}/test.npz",
        classes="results/data/{dataset}/classes.json",
    output:
        weights="results/models/{model}/{dataset}/judge/weights.safetensors",
        info="results/models/{model}/{dataset}/judge/model.json",
        metrics="results/models/{model}/{dataset}/judge/metrics.json",
    log:
        "results/logs/train_judge/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/train_judge/{model}/{dataset}.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: SETTINGS.execution.threads
    resources:
        mem_mb=6000,
        runtime="4h",
        gpu=GPUS,
    params:
        # the judge trains for its own epochs, with every other train setting
        train={k: v for k, v in SETTINGS.train.params().items() if k != "epochs"},
        judge=SETTINGS.sections["fidelity"]["judge"],
    script:
        "../workflow_scripts/train_judge.py"


rule fidelity:
    input:
        synthetic="results/synthetic/{dataset}/{generator}/train.npz",
        real_train="results/data/{dataset}/train.npz",
        real_test="results/data/{dataset}/test.npz",
        classes="results/data/{dataset}/classes.json",
        judge=judge_file("weights.safetensors"),
        judge_info=judge_file("model.json"),
        judge_metrics=judge_file("metrics.json"),
        backbone=reference_file("weights.safetensors", model=JUDGE_MODEL),
        backbone_info=reference_file("model.json", model=JUDGE_MODEL),
    output:
        "results/synthetic/{dataset}/{generator}/fidelity.json",
    log:
        "results/logs/fidelity/{dataset}/{generator}.log",
    benchmark:
        "results/benchmarks/fidelity/{dataset}/{generator}.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime="30m",
        gpu=GPUS,
    params:
        diversity=SETTINGS.sections["diversity"],
    script:
        "../workflow_scripts/fidelity.py"


rule summarize_fidelity:
    input:
        expand(
            "results/synthetic/{dataset}/{generator}/fidelity.json",
            dataset=DATASETS,
            generator=USED_GENERATORS,
        ),
    output:
        report(
            "results/synthetic/fidelity.csv",
            caption="../report/fidelity.rst",
            category="Tables",
        ),
    log:
        "results/logs/summarize_fidelity.log",
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    script:
        "../workflow_scripts/summarize_fidelity.py"
