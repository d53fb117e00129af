rule diversity:
    input:
        train="results/data/{dataset}/train.npz",
        synthetic=synthetic_files,
        weights=reference_file("weights.safetensors"),
        info=reference_file("model.json"),
    output:
        "results/diversity/{dataset}/{model}/{condition}.json",
    log:
        "results/logs/diversity/{dataset}/{model}/{condition}.log",
    benchmark:
        "results/benchmarks/diversity/{dataset}/{model}/{condition}.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
        gpu=GPUS,
    params:
        # what the scores depend on: the training data (the condition's name only labels the file)
        data=lambda wildcards: CONDITIONS[wildcards.condition].data_params(),
        diversity=SETTINGS.sections["diversity"],
        seeds=SEEDS,
    script:
        "../workflow_scripts/diversity.py"


rule summarize_diversity:
    input:
        expand(
            "results/diversity/{dataset}/{model}/{condition}.json",
            dataset=DATASETS,
            model=MODELS,
            condition=sorted(set(DIVERSITY_SOURCES.values())),
        ),
    output:
        report(
            "results/diversity/diversity.csv",
            caption="../report/diversity.rst",
            category="Tables",
        ),
    log:
        "results/logs/summarize_diversity.log",
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    params:
        # every condition of the grid, in order, with the condition whose measurement it shares
        conditions=[
            {
                "condition": name,
                "source": DIVERSITY_SOURCES[name],
                "family": c.family,
                "kind": c.kind,
                "level": c.level,
            }
            for name, c in CONDITIONS.items()
        ],
    script:
        "../workflow_scripts/summarize_diversity.py"
