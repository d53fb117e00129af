# The two commands of the README. Each does all of its own set-up on a fresh machine:
#   make run   - create .venv, install the Debian Fashion-MNIST files (when root + apt), run the default pipeline
#                and render results/report.html
#   make test  - the same set-up plus the Debian SLURM + munge packages (when root + apt; tests/test_slurm.py starts a
#                local cluster from them), then pytest, snakemake --lint and snakefmt --check
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE_ARGS ?=
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SLURM_PACKAGES := slurmctld slurmd slurm-client munge
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test setup data slurm lint format clean benchmark

run: setup data
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --report results/report.html $(SNAKEMAKE_ARGS)

test: setup data slurm
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules

setup: $(VENV)/.installed

# pip (not uv/poetry): torch 2.14.1 / torchvision 0.29.1 are served from the machine's local package store.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

data:
	@if [ -f $(FASHION_MNIST) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the Debian package dataset-fashion-mnist"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
		echo "note: $(FASHION_MNIST) is missing and apt is not usable here; install dataset-fashion-mnist or set datasets[].root"; \
	fi

# The daemons and clients of the single-node cluster in tests/slurm/ (start_cluster.sh / stop_cluster.sh).
slurm:
	@if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
		&& command -v munged >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the Debian packages $(SLURM_PACKAGES)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends $(SLURM_PACKAGES) >/dev/null 2>&1 \
			|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(SLURM_PACKAGES) >/dev/null; }; \
	else \
		echo "note: SLURM is missing and apt is not usable here; tests/test_slurm.py needs $(SLURM_PACKAGES)"; \
	fi

lint: setup
	$(BIN)/snakemake --lint

format: setup
	$(BIN)/snakefmt Snakefile rules

benchmark: setup data
	$(BIN)/python benchmarks/train_loop.py

clean:
	rm -rf results .snakemake
