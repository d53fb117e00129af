rule summarize_runs:
    input:
        metrics=[run_dir(run) + "/metrics.json" for run in RUNS],
    output:
        runs="results/summary/runs.csv",
    params:
        run_keys=[{"dataset": run["dataset"], "model": run["model"]} for run in RUNS],
    log:
        "results/logs/summarize_runs.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        "../envs/weightscape.yaml"
    script:
        "../workflow_scripts/summarize_runs.py"
