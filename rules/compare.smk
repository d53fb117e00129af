rule compare:
    input:
        layers="results/summary/layers.parquet",
        runs="results/summary/runs.csv",
    output:
        effects="results/compare/family_effects.csv",
        tests="results/compare/family_tests.csv",
        distances="results/compare/condition_distances.csv",
        outcomes="results/compare/outcome_tests.csv",
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
        compare=config["compare"],
    script:
        "../workflow_scripts/compare.py"
