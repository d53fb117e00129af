rule compare:
    input:
        layers="results/summary/layers.parquet",
        runs="results/summary/runs.csv",
    output:
        effects=report(
            "results/compare/family_effects.csv",
            caption="../report/family_effects.rst",
            category="Tables",
        ),
        tests=report(
            "results/compare/family_tests.csv",
            caption="../report/family_tests.rst",
            category="Tables",
        ),
        distances=report(
            "results/compare/condition_distances.csv",
            caption="../report/condition_distances.rst",
            category="Tables",
        ),
        outcomes=report(
            "results/compare/outcome_tests.csv",
            caption="../report/outcome_tests.rst",
            category="Tables",
        ),
        frozen="results/compare/frozen_layers.csv",
        deltas="results/compare/layer_deltas.parquet",
    log:
        "results/logs/compare.log",
    benchmark:
        "results/benchmarks/compare.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    params:
        compare=SETTINGS.sections["compare"],
    script:
        "../workflow_scripts/compare.py"


rule answer:
    input:
        layers="results/summary/layers.parquet",
        runs="results/summary/runs.csv",
        diversity="results/diversity/diversity.csv",
    output:
        **{
            name: report(
                f"results/answer/{name}.csv",
                caption=f"../report/answer_{name}.rst",
                category="Answer tables",
            )
            for name in ANSWER_TABLES
        },
    log:
        "results/logs/answer.log",
    benchmark:
        "results/benchmarks/answer.tsv"
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="30m",
    params:
        stats=SETTINGS.sections["stats"],
        combined=combined_pairs(),
    script:
        "../workflow_scripts/answer.py"
