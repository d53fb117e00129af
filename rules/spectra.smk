rule spectra_reference:
    input:
        weights=f"{layout.REFERENCES}/weights.safetensors",
        info=f"{layout.REFERENCES}/model.json",
    output:
        csv=f"{layout.REFERENCES}/spectra/layers.csv",
        parquet=f"{layout.REFERENCES}/spectra/layers.parquet",
        eigenvalues=f"{layout.REFERENCES}/spectra/eigenvalues.npz",
    log:
        layout.log("spectra_reference", layout.REFERENCE),
    benchmark:
        layout.benchmark("spectra_reference", layout.REFERENCE)
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="1h",
    params:
        spectra=SETTINGS.spectra_params(),
        # how much each layer's scale matters (a property of the architecture, measured on the reference)
        probe_scale=True,
    script:
        "../workflow_scripts/spectra.py"


rule spectra_run:
    input:
        weights=f"{layout.RUNS}/weights.safetensors",
        info=f"{layout.REFERENCES}/model.json",
    output:
        csv=f"{layout.RUNS}/spectra/layers.csv",
        parquet=f"{layout.RUNS}/spectra/layers.parquet",
        eigenvalues=f"{layout.RUNS}/spectra/eigenvalues.npz",
    log:
        layout.log("spectra_run", layout.RUN),
    benchmark:
        layout.benchmark("spectra_run", layout.RUN)
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="1h",
    params:
        spectra=SETTINGS.spectra_params(),
    script:
        "../workflow_scripts/spectra.py"


rule spectra_delta:
    input:
        weights=f"{layout.RUNS}/weights.safetensors",
        info=f"{layout.REFERENCES}/model.json",
        base=f"{layout.REFERENCES}/weights.safetensors",
    output:
        csv=f"{layout.RUNS}/spectra_delta/layers.csv",
        parquet=f"{layout.RUNS}/spectra_delta/layers.parquet",
        eigenvalues=f"{layout.RUNS}/spectra_delta/eigenvalues.npz",
    log:
        layout.log("spectra_delta", layout.RUN),
    benchmark:
        layout.benchmark("spectra_delta", layout.RUN)
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="1h",
    params:
        spectra=SETTINGS.spectra_params(),
    script:
        "../workflow_scripts/spectra.py"


rule summarize_spectra:
    input:
        layers=spectra_tables,
    output:
        layers=layout.LAYERS_TABLE,
    log:
        layout.log("summarize_spectra"),
    benchmark:
        layout.benchmark("summarize_spectra")
    conda:
        "../envs/weightscape.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime="10m",
    params:
        families=condition_families(),
    script:
        "../workflow_scripts/summarize_spectra.py"
