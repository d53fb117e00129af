rule spectra_reference:
    input:
        weights="results/models/{model}/{dataset}/seed{seed}/weights.safetensors",
        info="results/models/{model}/{dataset}/seed{seed}/model.json",
    output:
        csv="results/models/{model}/{dataset}/seed{seed}/spectra/layers.csv",
        parquet="results/models/{model}/{dataset}/seed{seed}/spectra/layers.parquet",
        eigenvalues="results/models/{model}/{dataset}/seed{seed}/spectra/eigenvalues.npz",
    log:
        "results/logs/spectra_reference/{model}/{dataset}/seed{seed}.log",
    benchmark:
        "results/benchmarks/spectra_reference/{model}/{dataset}/seed{seed}.tsv"
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


rule spectra_run:
    input:
        weights="results/runs/{dataset}/{model}/{condition}/seed{seed}/weights.safetensors",
        info="results/models/{model}/{dataset}/seed{seed}/model.json",
    output:
        csv="results/runs/{dataset}/{model}/{condition}/seed{seed}/spectra/layers.csv",
        parquet="results/runs/{dataset}/{model}/{condition}/seed{seed}/spectra/layers.parquet",
        eigenvalues="results/runs/{dataset}/{model}/{condition}/seed{seed}/spectra/eigenvalues.npz",
    log:
        "results/logs/spectra_run/{dataset}/{model}/{condition}/seed{seed}.log",
    benchmark:
        "results/benchmarks/spectra_run/{dataset}/{model}/{condition}/seed{seed}.tsv"
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
        weights="results/runs/{dataset}/{model}/{condition}/seed{seed}/weights.safetensors",
        info="results/models/{model}/{dataset}/seed{seed}/model.json",
        base="results/models/{model}/{dataset}/seed{seed}/weights.safetensors",
    output:
        csv="results/runs/{dataset}/{model}/{condition}/seed{seed}/spectra_delta/layers.csv",
        parquet="results/runs/{dataset}/{model}/{condition}/seed{seed}/spectra_delta/layers.parquet",
        eigenvalues="results/runs/{dataset}/{model}/{condition}/seed{seed}/spectra_delta/eigenvalues.npz",
    log:
        "results/logs/spectra_delta/{dataset}/{model}/{condition}/seed{seed}.log",
    benchmark:
        "results/benchmarks/spectra_delta/{dataset}/{model}/{condition}/seed{seed}.tsv"
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
        layers="results/summary/layers.parquet",
    log:
        "results/logs/summarize_spectra.log",
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
