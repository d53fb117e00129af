"""The results layout, in one place: every file the pipeline writes, as a path template of its wildcards.

The rules take their paths from here (rules/common.smk), :func:`identity` reads the wildcards back from a path for
the tables (weightscape.tables), and the benchmarks and tests find files with the same templates. Every tree names
an item by its wildcards in one order - model, dataset, then condition or generator, then seed:

    results/data/{dataset}/                                  train/val/test.npz, classes.json, ood/, judge_train.npz
    results/models/{model}/{dataset}/seed{seed}/             a pretrained reference: weights, model.json, spectra/
    results/models/{model}/{dataset}/judge/                  the fidelity judge
    results/generators/{dataset}/{generator}/                a generator trained by the pipeline
    results/synthetic/{dataset}/{generator}/                 its images, generator.json, fidelity.json
    results/runs/{model}/{dataset}/{condition}/seed{seed}/   one fine-tune: weights, curve, metrics, spectra/
    results/diversity/{model}/{dataset}/{condition}.json     Vendi scores of a condition's training data
    results/summary/, compare/, answer/, figures/            the tables and figures over the whole grid
    results/logs/<rule>/<item>.log, results/benchmarks/<rule>/<item>.tsv

Standard library only: the workflow imports it on every parse.
"""

from __future__ import annotations

import re
from pathlib import Path

from weightscape.names import DELTA, FINETUNED, PRETRAINED

RESULTS = "results"

# --- one item, as its path below a tree -----------------------------------------------------------------------------
#: a model on a dataset
MODEL = "{model}/{dataset}"
#: a pretrained reference: the backbone + the new head initialised with the seed
REFERENCE = MODEL + "/seed{seed}"
#: one condition of a model on a dataset, all seeds (the diversity of its training data)
CONDITION = MODEL + "/{condition}"
#: one fine-tune
RUN = CONDITION + "/seed{seed}"
#: one generator of one dataset
GENERATOR = "{dataset}/{generator}"

# --- the trees ------------------------------------------------------------------------------------------------------
DATA = f"{RESULTS}/data/{{dataset}}"
REFERENCES = f"{RESULTS}/models/{REFERENCE}"
JUDGE = f"{RESULTS}/models/{MODEL}/judge"
GENERATORS = f"{RESULTS}/generators/{GENERATOR}"
SYNTHETIC = f"{RESULTS}/synthetic/{GENERATOR}"
RUNS = f"{RESULTS}/runs/{RUN}"
DIVERSITY = f"{RESULTS}/diversity/{CONDITION}.json"
#: the spectra folder beside a reference or a run, by stage (delta: Delta W = W_finetuned - W_pretrained)
SPECTRA = {PRETRAINED: "spectra", FINETUNED: "spectra", DELTA: "spectra_delta"}

# --- the tables and figures over the whole grid ---------------------------------------------------------------------
RUNS_TABLE = f"{RESULTS}/summary/runs.csv"
LAYERS_TABLE = f"{RESULTS}/summary/layers.parquet"
DIVERSITY_TABLE = f"{RESULTS}/diversity/diversity.csv"
FIDELITY_TABLE = f"{RESULTS}/synthetic/fidelity.csv"
COMPARE = f"{RESULTS}/compare/{{name}}"
ANSWER_TABLE = f"{RESULTS}/answer/{{name}}.csv"
FIGURE = f"{RESULTS}/figures/{{name}}"
SUMMARY = f"{RESULTS}/summary.md"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
#: the figures of rule plots, results/figures/<name>.png and .txt (caption), in report order; curvature.enabled
#: adds CURVATURE_FIGURES[0], curvature.every_epoch the second
FIGURES = ("esd_overlay", "family_bars", "layer_lines", "quadrant", "outcome_bars", "accuracy_vs_vendi",
           "dose_response", "where", "predictors")
CURVATURE_FIGURES = ("curvature", "curvature_trajectory")


def log(rule: str, item: str = "") -> str:
    """A rule's log file: results/logs/<rule>/<item>.log, or results/logs/<rule>.log for a rule with one job."""
    return f"{LOGS}/{rule}/{item}.log" if item else f"{LOGS}/{rule}.log"


def benchmark(rule: str, item: str = "") -> str:
    """A rule's benchmark table (Snakemake's `benchmark:`: wall seconds, memory, CPU), results/benchmarks/."""
    return f"{BENCHMARKS}/{rule}/{item}.tsv" if item else f"{BENCHMARKS}/{rule}.tsv"


# --- reading an identity back ---------------------------------------------------------------------------------------
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


def _pattern(template: str) -> str:
    """A template below results/ as a regular expression capturing its wildcards (seed as digits)."""
    text = re.escape(template.removeprefix(f"{RESULTS}/"))
    text = text.replace(r"\{seed\}", r"(?P<seed>\d+)")
    return re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m[1]}>{_NAME})", text)


#: (pattern matched against the end of a path, fixed fields added to what it captures), most specific first
_IDENTITIES: tuple[tuple[re.Pattern, dict], ...] = tuple(
    (re.compile(_pattern(template) + rest + "$"), fixed) for template, rest, fixed in (
        (f"{RUNS}/{SPECTRA[FINETUNED]}", "/[^/]+", {"stage": FINETUNED}),
        (f"{RUNS}/{SPECTRA[DELTA]}", "/[^/]+", {"stage": DELTA}),
        (RUNS, "/[^/]+", {}),
        (f"{REFERENCES}/{SPECTRA[PRETRAINED]}", "/[^/]+", {"condition": PRETRAINED, "stage": PRETRAINED}),
        (REFERENCES, "/[^/]+", {"condition": PRETRAINED}),
        (DIVERSITY, "", {}),
        (SYNTHETIC, "/[^/]+", {}),
    ))


def fields(template: str, text: str) -> dict | None:
    """The wildcards of `text` read back with `template` (all of it must match; seed as an int), e.g.
    fields(RUN, "lite0/fmnist/baseline/seed1") -> {model: lite0, dataset: fmnist, condition: baseline, seed: 1}."""
    match = re.fullmatch(_pattern(template), text)
    return match and {key: int(value) if key == "seed" else value for key, value in match.groupdict().items()}


def identity(path: str | Path) -> dict:
    """The wildcards of one results file from its path, e.g. ``results/runs/lite0/fmnist/baseline/seed1/metrics.json``
    -> {model: lite0, dataset: fmnist, condition: baseline, seed: 1}; spectra tables also get their `stage`, a
    reference's files the condition `pretrained`. The path may be absolute or lie in another copy of the tree: its
    end is matched. Raises ValueError naming the file when it is not in a known place."""
    text = Path(path).as_posix()
    for pattern, fixed in _IDENTITIES:
        match = pattern.search(text)
        if match:
            found = {key: int(value) if key == "seed" else value for key, value in match.groupdict().items()}
            return {**found, **fixed}
    raise ValueError(f"{path}: not a file of the results layout (runs/, models/, diversity/, synthetic/)")
