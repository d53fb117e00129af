rule summarize_runs:
    input:
        metrics=[run_file(run, "metrics.json") for run in RUNS],
        curvature=curvature_files(),
    output:
        runs=report(layout.RUNS_TABLE, caption="../report/runs.rst", category="Tables"),
    log:
        layout.log("summarize_runs"),
    benchmark:
        layout.benchmark("summarize_runs")
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    script:
        "../workflow_scripts/summarize_runs.py"
