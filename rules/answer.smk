# The headline: the across-seed verdicts and claims (weightscape.answer), one table per name of
# weightscape.answer.TABLES.
rule answer:
    input:
        layers=layout.LAYERS_TABLE,
        runs=layout.RUNS_TABLE,
        diversity=layout.DIVERSITY_TABLE,
    output:
        **{
            name: report(
                layout.ANSWER_TABLE.format(name=name),
                caption=f"../report/answer_{name}.rst",
                category="Answer tables",
            )
            for name in ANSWER_TABLES
        },
    log:
        layout.log("answer"),
    benchmark:
        layout.benchmark("answer")
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
