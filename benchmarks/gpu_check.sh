#!/usr/bin/env bash
# The GPU check, ready to run the moment a CUDA machine is lent (about 10 minutes on one H200; parts 2-3 alone,
# --skip-models --skip-grid, about 6):
#   1. benchmarks/gpu_check.py: the paper config's two models (CLIP ViT-B/32, CLIP RN50; random weights, 224 px,
#      bf16) through a few hundred training steps of weightscape's loop and of a bare bf16 torch loop, images/s and
#      their ratio, peak GPU memory, finiteness of every output, the spectra of both trained models;
#   2. benchmarks/gpu_jobs.py: where each model's first epoch goes (fresh job per setting: as the pipeline runs,
#      CUDA modules loaded eagerly, cudnn.benchmark on), then k = 1, 2, 4, 8 concurrent jobs of each on one GPU:
#      aggregate and per-job images/s, peak memory, GPU utilisation; the figures go to the --rates file;
#   3. benchmarks/grid_profile.py --project: configs/paper.yaml on this one GPU at each k, from those rates;
#   4. the smoke grid (configs/smoke.yaml) with one seed, train.device: cuda and 4 jobs per GPU, end to end
#      through snakemake, and a check that every run's metrics are finite and were measured on the GPU.
#
#   benchmarks/gpu_check.sh [--steps N] [--skip-models] [--skip-jobs] [--skip-grid] [--rates FILE] [--workdir DIR]
#                           [--cores N] [--help]      (paths relative to the repository root;
#                           --rates default: benchmarks/results/gpu_rates.json)
#
# Python: $PYTHON if set, else .venv/bin/python when `make setup` made one, else python3. It installs nothing
# beyond that set-up; on a machine without the registries (the lent GPU machines) put the missing wheels in
# $WHEELS (default .whl/) and they are installed offline into a scratch folder first. Fashion-MNIST is read from
# $FASHION_MNIST_ROOT when set (default: the Debian package's folder). Exit status 0 only when every part passed.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
STEPS=150
GRID=1
MODELS=1
JOBS=1
RATES=benchmarks/results/gpu_rates.json
WORKDIR=""
CORES=$(nproc)
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) STEPS="${2:?--steps needs a number}"; shift 2 ;;
        --skip-grid) GRID=0; shift ;;
        --skip-models) MODELS=0; shift ;;
        --skip-jobs) JOBS=0; shift ;;
        --rates) RATES="${2:?--rates needs a file}"; shift 2 ;;
        --workdir) WORKDIR="${2:?--workdir needs a folder}"; shift 2 ;;
        --cores) CORES="${2:?--cores needs a number}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1'; allowed: --steps N, --skip-models, --skip-jobs, --skip-grid, --rates FILE, --workdir DIR, --cores N, --help" >&2
           exit 2 ;;
    esac
done
case "$STEPS$CORES" in *[!0-9]*|"") echo "gpu_check.sh: --steps and --cores take whole numbers" >&2; exit 2 ;; esac

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WHEELS=${WHEELS:-.whl}
if ! "$PYTHON" -c "import weightscape, snakemake, diffusers" 2>/dev/null; then
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        SITE=$(mktemp -d /tmp/weightscape-site.XXXXXX)
        echo "installing $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE (offline)"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl
        export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
        export PATH="$SITE/bin:$PATH"
    else
        export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
    "$PYTHON" -c "import weightscape, snakemake, diffusers" || {
        echo "gpu_check.sh: $PYTHON cannot import weightscape, snakemake and diffusers: run 'make setup' or put their wheels in $WHEELS" >&2
        exit 2
    }
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
BIN_DIR=$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")
export PATH="$BIN_DIR:$PATH"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
started=$(date +%s)
status=0

if [ "$MODELS" = 1 ]; then
    echo "== 1. paper models: weightscape loop vs bare bf16 loop, spectra"
    "$PYTHON" benchmarks/gpu_check.py --steps "$STEPS" || status=1
    echo "   (part 1: $(( $(date +%s) - started )) s)"
fi

if [ "$JOBS" = 1 ]; then
    echo "== 2. warm-up and k concurrent jobs per GPU"
    mkdir -p "$(dirname "$RATES")"
    "$PYTHON" benchmarks/gpu_jobs.py --share 1,2,4,8 --rates "$RATES" || status=1
    echo "== 3. configs/paper.yaml on one GPU, from $RATES"
    for k in 1 2 4 8; do
        "$PYTHON" benchmarks/grid_profile.py --configfile configs/paper.yaml --project "$RATES" --jobs-per-gpu $k \
            || status=1
    done
    echo "   (parts 2-3: $(( $(date +%s) - started )) s since the start)"
fi

if [ "$GRID" = 1 ]; then
    echo "== 4. smoke grid, one seed, train.device: cuda, 4 jobs per GPU"
    WORKDIR=${WORKDIR:-$(mktemp -d /tmp/weightscape-gpu-smoke.XXXXXX)}
    mkdir -p "$WORKDIR"
    "$PYTHON" - "$WORKDIR/gpu_smoke.yaml" <<'EOF'
import os, sys, yaml
config = yaml.safe_load(open("configs/smoke.yaml"))
config["seeds"] = [0]
config["train"].update(device="cuda", jobs_per_gpu=4)
root = os.environ.get("FASHION_MNIST_ROOT")
if root:
    for dataset in config["datasets"]:
        dataset["root"] = os.path.abspath(root)
yaml.safe_dump(config, open(sys.argv[1], "w"))
EOF
    grid_started=$(date +%s)
    if "$PYTHON" -m snakemake --snakefile "$PWD/Snakefile" --directory "$WORKDIR" --cores "$CORES" --quiet rules \
            --configfile "$WORKDIR/gpu_smoke.yaml"; then
        echo "   smoke grid: $(( $(date +%s) - grid_started )) s wall"
        "$PYTHON" - "$WORKDIR" <<'EOF' || status=1
import math, pathlib, sys
import pandas as pd
workdir = pathlib.Path(sys.argv[1])
runs = pd.read_csv(workdir / "results/summary/runs.csv")
columns = [c for c in ("condition", "seed", "accuracy", "ece", "ood_accuracy") if c in runs.columns]
print(runs[columns].to_string(index=False))
numeric = runs.select_dtypes("number")
finite = bool(numeric.apply(lambda col: col.map(lambda v: math.isfinite(v) if v == v else True)).all().all())
logs = list((workdir / "results/logs/finetune").rglob("*.log"))
on_gpu = sum(", on cuda" in p.read_text() for p in logs)
print(f"   runs {len(runs)}, every metric finite: {finite}, fine-tunes on cuda: {on_gpu} of {len(logs)}")
sys.exit(0 if finite and len(runs) and on_gpu == len(logs) else 1)
EOF
    else
        status=1
        echo "   smoke grid FAILED; logs under $WORKDIR/results/logs" >&2
        find "$WORKDIR/results/logs" -name '*.log' -newer "$WORKDIR/gpu_smoke.yaml" -size +0 2>/dev/null \
            | head -3 | xargs -r tail -n 15 >&2
    fi
fi
echo "gpu_check.sh: $( [ $status = 0 ] && echo ok || echo FAILED ) in $(( $(date +%s) - started )) s"
exit $status
