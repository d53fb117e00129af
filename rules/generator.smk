rule train_generator:
    input:
        train=f"{layout.DATA}/train.npz",
        classes=f"{layout.DATA}/classes.json",
    output:
        weights=f"{layout.GENERATORS}/unet.safetensors",
        info=f"{layout.GENERATORS}/generator.json",
    log:
        layout.log("train_generator", layout.GENERATOR),
    benchmark:
        layout.benchmark("train_generator", layout.GENERATOR)
    priority: 10  # the synthetic images (and their fine-tunes) wait for it
    conda:
        "../envs/weightscape.yaml"
    threads: lambda wildcards: GENERATORS[wildcards.generator].train["threads"]
    resources:
        mem_mb=4000,
        runtime="24h",
        gpu=GPUS,
        gpu_slots=GPU_SLOTS,
    params:
        train=lambda wildcards: GENERATORS[wildcards.generator].train_params(),
        checkpoint=f"{layout.GENERATORS}/checkpoint.pt",
    script:
        "../workflow_scripts/train_generator.py"


rule synthesize:
    input:
        generator=generator_files,
        classes=f"{layout.DATA}/classes.json",
        train=f"{layout.DATA}/train.npz",
    output:
        images=f"{layout.SYNTHETIC}/train.npz",
        info=f"{layout.SYNTHETIC}/generator.json",
    log:
        layout.log("synthesize", layout.GENERATOR),
    benchmark:
        layout.benchmark("synthesize", layout.GENERATOR)
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
        gpu_slots=GPU_SLOTS,
    params:
        generator=lambda wildcards: GENERATORS[wildcards.generator].sample_params(),
        directory=generator_dir,
    script:
        "../workflow_scripts/synthesize.py"


rule train_judge:
    input:
        reference=first_seed_reference("weights.safetensors"),
        reference_info=first_seed_reference("model.json"),
        judge_train=f"{layout.DATA}/judge_train.npz",
        test=f"{layout.DATA}/test.npz",
        classes=f"{layout.DATA}/classes.json",
    output:
        weights=f"{layout.JUDGE}/weights.safetensors",
        info=f"{layout.JUDGE}/model.json",
        metrics=f"{layout.JUDGE}/metrics.json",
    log:
        layout.log("train_judge", layout.MODEL),
    benchmark:
        layout.benchmark("train_judge", layout.MODEL)
    conda:
        "../envs/weightscape.yaml"
    threads: SETTINGS.execution.threads
    resources:
        mem_mb=6000,
        runtime="4h",
        gpu=GPUS,
        gpu_slots=GPU_SLOTS,
    params:
        # the judge trains for its own epochs, with every other train setting
        train={k: v for k, v in SETTINGS.train.params().items() if k != "epochs"},
        judge=SETTINGS.sections["fidelity"]["judge"],
    script:
        "../workflow_scripts/train_judge.py"


rule fidelity:
    input:
        synthetic=f"{layout.SYNTHETIC}/train.npz",
        real_train=f"{layout.DATA}/train.npz",
        real_test=f"{layout.DATA}/test.npz",
        classes=f"{layout.DATA}/classes.json",
        judge=judge_file("weights.safetensors"),
        judge_info=judge_file("model.json"),
        judge_metrics=judge_file("metrics.json"),
        backbone=first_seed_reference("weights.safetensors", model=JUDGE_MODEL),
        backbone_info=first_seed_reference("model.json", model=JUDGE_MODEL),
    output:
        f"{layout.SYNTHETIC}/fidelity.json",
    log:
        layout.log("fidelity", layout.GENERATOR),
    benchmark:
        layout.benchmark("fidelity", layout.GENERATOR)
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime="30m",
        gpu=GPUS,
        gpu_slots=GPU_SLOTS,
    params:
        diversity=SETTINGS.sections["diversity"],
    script:
        "../workflow_scripts/fidelity.py"


rule summarize_fidelity:
    input:
        expand(
            f"{layout.SYNTHETIC}/fidelity.json",
            dataset=DATASETS,
            generator=USED_GENERATORS,
        ),
    output:
        report(
            layout.FIDELITY_TABLE,
            caption="../report/fidelity.rst",
            category="Tables",
        ),
    log:
        layout.log("summarize_fidelity"),
    benchmark:
        layout.benchmark("summarize_fidelity")
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    script:
        "../workflow_scripts/summarize_fidelity.py"
