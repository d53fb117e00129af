rule curvature_reference:
    input:
        weights=f"{layout.REFERENCES}/weights.safetensors",
        info=f"{layout.REFERENCES}/model.json",
        train=training_file,
    output:
        f"{layout.REFERENCES}/curvature.json",
    log:
        layout.log("curvature_reference", layout.REFERENCE),
    benchmark:
        layout.benchmark("curvature_reference", layout.REFERENCE)
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime="1h",
        gpu=GPUS,
        gpu_slots=GPU_SLOTS,
    params:
        curvature=SETTINGS.curvature_params(),
        subset=subset_params,
    script:
        "../workflow_scripts/curvature.py"


rule curvature_run:
    input:
        weights=f"{layout.RUNS}/weights.safetensors",
        info=f"{layout.REFERENCES}/model.json",
        train=training_file,
    output:
        f"{layout.RUNS}/curvature.json",
    log:
        layout.log("curvature_run", layout.RUN),
    benchmark:
        layout.benchmark("curvature_run", layout.RUN)
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime="1h",
        gpu=GPUS,
        gpu_slots=GPU_SLOTS,
    params:
        curvature=SETTINGS.curvature_params(),
        subset=subset_params,
    script:
        "../workflow_scripts/curvature.py"
