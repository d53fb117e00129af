"""A cell that fails at run time does not stop the rest of the grid (keep-going from profiles/default).

The failing cell is a declared diversity condition whose transform passes config validation (the validator's trial
image is large enough for any crop) but cannot run on the real 28 px images: random_crop to 64 px.
"""

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake, write_config
from weightscape import layout
from weightscape.config import validate_config

pytestmark = pytest.mark.pipeline

ITEM = {"dataset": "fashion_mnist", "model": "efficientnet_lite0", "seed": 0}
CELL = layout.RUNS.format(**ITEM, condition="{condition}")
DIVERSITY = layout.DIVERSITY.format(**ITEM, condition="{condition}")
CROP_ERROR = "Required crop size (64, 64) is larger than input image size"


def tiny_failing_config(path: Path) -> Path:
    """The smoke config cut down to one seed, one epoch and two cells: baseline and the failing `bigcrop`."""
    return write_config(
        path,
        REPO / "configs" / "smoke.yaml",
        datasets=[{"name": "fashion_mnist", "source": "fashion_mnist", "train_per_class": 10, "val_per_class": 2,
                   "test_per_class": 5}],
        seeds=[0],
        ood={"corruptions": ["gaussian_noise"], "severities": [1], "test_per_class": 2},
        train={"epochs": 1},
        families={"baseline": True, "dropout": [], "weight_decay": [],
                  "diversity": {"augment": [], "noise": [], "stacked": []},
                  "synthetic": {"generator": None, "replace": []}},
        conditions=[{"name": "bigcrop", "family": "diversity", "kind": "augment",
                     "transforms": [{"name": "random_crop", "args": {"size": 64}}]}],
        diversity={"sample_size": 20},
    )


def test_failing_cell_does_not_stop_the_others(tmp_path, fashion_root):
    config = tiny_failing_config(tmp_path / "tiny.yaml")
    validate_config(yaml.safe_load(config.read_text()))  # the bad crop passes validation: it fails only at run time

    # One core, and the failing cells first (--prioritize): without keep-going snakemake would stop at the first
    # failure, before the baseline cell has even started. No --keep-going here: it must come from profiles/default.
    failing = [f"{CELL.format(condition='bigcrop')}/metrics.json", DIVERSITY.format(condition="bigcrop")]
    result = snakemake(tmp_path, "--cores", "1", "--configfile", str(config), "--prioritize", *failing)
    log = result.stderr
    assert result.returncode != 0, log[-3000:]
    assert "workflow specific profile" in log and "profiles/default" in log, log[:2000]

    # snakemake names each failing rule, its cell and its log; the log holds the run-time error
    for rule, rule_log in [("finetune", layout.log("finetune", layout.RUN.format(**ITEM, condition="bigcrop"))),
                           ("diversity", layout.log("diversity", layout.CONDITION.format(**ITEM, condition="bigcrop")))]:
        assert f"Error in rule {rule}:" in log, log[-3000:]
        assert rule_log in log
        assert CROP_ERROR in (tmp_path / rule_log).read_text()
    assert "Error in rule" not in log.replace("Error in rule finetune:", "").replace("Error in rule diversity:", "")

    # jobs went on after the first failure, and the baseline cell finished
    first_error = log.index("Error in rule")
    finished_after = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", log[first_error:])
    assert {"finetune", "spectra_run", "diversity"} <= set(finished_after), log[-3000:]
    baseline = tmp_path / CELL.format(condition="baseline")
    for name in ["metrics.json", "weights.safetensors", "spectra/layers.parquet"]:
        assert (baseline / name).is_file(), name
    assert (tmp_path / DIVERSITY.format(condition="baseline")).is_file()

    # nothing of the failed cell is left behind, and the aggregates that need it were not built
    assert not (tmp_path / CELL.format(condition="bigcrop") / "metrics.json").exists()
    assert not (tmp_path / DIVERSITY.format(condition="bigcrop")).exists()
    assert not (tmp_path / "results/summary/runs.csv").exists()
