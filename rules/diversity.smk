rule diversity:
    input:
        train=training_file,
        synthetic=synthetic_files,
        weights=first_seed_reference("weights.safetensors"),
        info=first_seed_reference("model.json"),
    output:
        layout.DIVERSITY,
    log:
        layout.log("diversity", layout.CONDITION),
    benchmark:
        layout.benchmark("diversity", layout.CONDITION)
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
        gpu=GPUS,
        gpu_slots=GPU_SLOTS,
    params:
        # what the scores depend on: the training data (the condition's name only labels the file)
        data=lambda wildcards: CONDITIONS[wildcards.condition].data_params(),
        diversity=SETTINGS.sections["diversity"],
        seeds=SEEDS,
        subset=subset_params,
    script:
        "../workflow_scripts/diversity.py"


rule summarize_diversity:
    input:
        expand(
            layout.DIVERSITY,
            dataset=DATASETS,
            model=MODELS,
            condition=sorted(set(DIVERSITY_SOURCES.values())),
        ),
    output:
        report(
            layout.DIVERSITY_TABLE,
            caption="../report/diversity.rst",
            category="Tables",
        ),
    log:
        layout.log("summarize_diversity"),
    benchmark:
        layout.benchmark("summarize_diversity")
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
