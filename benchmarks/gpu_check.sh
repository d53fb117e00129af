#!/usr/bin/env bash
# The GPU check, ready to run the moment a CUDA machine is lent (about 10 minutes on one H200; `jobs` alone about 6):
#   jobs  benchmarks/train_loop.py on configs/paper.yaml's two models (CLIP ViT-B/32, CLIP RN50; random weights,
#         224 px, bf16): warm-up, weightscape's loop against a bare bf16 loop, k = 1, 2, 4, 8 concurrent jobs on one
#         GPU, the figures merged into $RATES; then benchmarks/grid_profile.py --project: configs/paper.yaml on this
#         one GPU at each k, from those rates;
#   grid  tests/test_gpu_check.py's GPU test: the smoke grid (configs/smoke.yaml) with one seed, train.device: cuda
#         and 4 jobs per GPU, end to end through snakemake; every run's metrics finite and measured on the GPU.
#
#   benchmarks/gpu_check.sh [jobs] [grid] [--help]      (default: both)
#
# RATES: default benchmarks/results/gpu_rates.json. Python: $PYTHON if set, else .venv/bin/python when `make setup`
# made one, else python3. It installs nothing beyond that set-up; on a machine without the registries (the lent GPU
# machines) put the missing wheels (pytest's too, for `grid`) in $WHEELS (default .whl/) and they are installed
# offline into a scratch folder first. Fashion-MNIST is read from $FASHION_MNIST_ROOT when set (default: the Debian
# package's folder). Exit status 0 only when every part passed.
set -euo pipefail

PARTS=" ${*:-jobs grid} "
for part in $PARTS; do
    case "$part" in
        jobs|grid) ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown part '$part'; allowed: jobs, grid, --help" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
RATES=${RATES:-benchmarks/results/gpu_rates.json}

PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
WHEELS=${WHEELS:-.whl}
if ! "$PYTHON" -c "import weightscape, snakemake, diffusers, pytest" 2>/dev/null; then
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        SITE=$(mktemp -d /tmp/weightscape-site.XXXXXX)
        echo "installing $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE (offline)"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl
        export PYTHONPATH="$PYTHONPATH:$SITE" PATH="$SITE/bin:$PATH"
    fi
    "$PYTHON" -c "import weightscape, snakemake, diffusers, pytest" || {
        echo "gpu_check.sh: $PYTHON cannot import weightscape, snakemake, diffusers and pytest: run 'make setup' or put their wheels in $WHEELS" >&2
        exit 2
    }
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PATH="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')"):$PATH"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
# a GPU check that quietly measured the CPU (a CPU-only torch, a broken driver) or skipped its GPU test would say ok
"$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' || {
    echo "gpu_check.sh: torch sees no CUDA device here; this check runs only on a GPU machine" >&2
    exit 2
}
started=$(date +%s)
status=0

if [[ "$PARTS" == *" jobs "* ]]; then
    echo "== jobs: the paper's models, warm-up, loops, k concurrent jobs per GPU"
    mkdir -p "$(dirname "$RATES")"
    "$PYTHON" benchmarks/train_loop.py --config configs/paper.yaml --device cuda --share 1 2 4 8 --rates "$RATES" || status=1
    echo "== configs/paper.yaml on one GPU, from $RATES"
    for k in 1 2 4 8; do
        "$PYTHON" benchmarks/grid_profile.py --configfile configs/paper.yaml --project "$RATES" --jobs-per-gpu $k \
            || status=1
    done
fi

if [[ "$PARTS" == *" grid "* ]]; then
    echo "== grid: the smoke grid, one seed, train.device: cuda, 4 jobs per GPU (a test of tests/test_gpu_check.py)"
    "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_gpu_check.py -k smoke_grid_on_the_gpu || status=1
fi
echo "gpu_check.sh: $( [ $status = 0 ] && echo ok || echo FAILED ) in $(( $(date +%s) - started )) s"
exit $status
