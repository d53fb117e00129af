rule plots:
    input:
        runs="results/summary/runs.csv",
        diversity="results/diversity/diversity.csv",
        effects="results/compare/family_effects.csv",
        deltas="results/compare/layer_deltas.parquet",
        curves="results/answer/curves.csv",
        placement="results/answer/placement.csv",
        answer_effects="results/answer/effects.csv",
        groups="results/answer/groups.csv",
        predictors="results/answer/predictors.csv",
        trajectory=trajectory_curves,
        eigenvalues=lambda wildcards: list(esd_archives().values()),
    output:
        **{
            name: report(
                f"results/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURES
        },
        captions=[f"results/figures/{name}.txt" for name in FIGURES],
    log:
        "results/logs/plots.log",
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="20m",
    params:
        plots=SETTINGS.sections["plots"],
        families=condition_families(),
        archives=esd_archives(),
    script:
        "../workflow_scripts/plots.py"


rule summary_md:
    input:
        tests="results/compare/family_tests.csv",
        distances="results/compare/condition_distances.csv",
        effects="results/compare/family_effects.csv",
        outcomes="results/compare/outcome_tests.csv",
        answer=expand("results/answer/{name}.csv", name=ANSWER_TABLES),
        fidelity=["results/synthetic/fidelity.csv"] if USED_GENERATORS else [],
    output:
        report("results/summary.md", caption="../report/summary.rst", category="Answer"),
    log:
        "results/logs/summary_md.log",
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    script:
        "../workflow_scripts/summary_md.py"
