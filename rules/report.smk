rule plots:
    input:
        runs=layout.RUNS_TABLE,
        diversity=layout.DIVERSITY_TABLE,
        effects=layout.COMPARE.format(name="family_effects.csv"),
        deltas=layout.COMPARE.format(name="layer_deltas.parquet"),
        curves=layout.ANSWER_TABLE.format(name="curves"),
        placement=layout.ANSWER_TABLE.format(name="placement"),
        answer_effects=layout.ANSWER_TABLE.format(name="effects"),
        groups=layout.ANSWER_TABLE.format(name="groups"),
        predictors=layout.ANSWER_TABLE.format(name="predictors"),
        trajectory=trajectory_curves,
        eigenvalues=lambda wildcards: list(esd_archives().values()),
    output:
        **{
            name: report(
                layout.FIGURE.format(name=f"{name}.png"),
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURES
        },
        captions=[layout.FIGURE.format(name=f"{name}.txt") for name in FIGURES],
    log:
        layout.log("plots"),
    benchmark:
        layout.benchmark("plots")
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
        tests=layout.COMPARE.format(name="family_tests.csv"),
        distances=layout.COMPARE.format(name="condition_distances.csv"),
        effects=layout.COMPARE.format(name="family_effects.csv"),
        outcomes=layout.COMPARE.format(name="outcome_tests.csv"),
        answer=expand(layout.ANSWER_TABLE, name=ANSWER_TABLES),
        fidelity=[layout.FIDELITY_TABLE] if USED_GENERATORS else [],
    output:
        report(layout.SUMMARY, caption="../report/summary.rst", category="Answer"),
    log:
        layout.log("summary_md"),
    benchmark:
        layout.benchmark("summary_md")
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    params:
        # what a seed varies, for the summary's sentence on the unit of replication
        resample_per_seed=RESAMPLE,
    script:
        "../workflow_scripts/summary_md.py"
