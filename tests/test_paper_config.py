"""configs/paper.yaml needs the internet and GPUs; offline we check what can be checked: it validates, its DAG
builds quickly with the full grid, and each of its model builders trains a step with random weights."""

import pytest
import torch
import yaml

from conftest import REPO, snakemake

PAPER = REPO / "configs" / "paper.yaml"


def _job_total(output: str) -> int:
    line = next(line for line in output.splitlines() if line.split()[:1] == ["total"])
    return int(line.split()[1])


@pytest.mark.pipeline
def test_paper_config_dry_run_builds_the_whole_grid(tmp_path):
    # its wall time is not tested: machines of this kind differ 2x
    result = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", str(PAPER))
    assert result.returncode == 0, result.stderr[-3000:]
    total = _job_total(result.stdout + result.stderr)
    # 2 datasets x 2 models x (21 + 10 synthetic) conditions x 3 seeds = 372 fine-tunes, as many spectra, ...
    assert total >= 500, total
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("model", yaml.safe_load(PAPER.read_text())["models"], ids=lambda m: m["name"])
def test_paper_model_builders_train_a_step_with_random_weights(model):
    from weightscape.models import build_model, insert_dropout

    built = build_model(model["arch"], 100, weights="random", head_seed=0)
    insert_dropout(built.module, 0.1, built.classifier_name)
    x = torch.randn(2, 3, model["image_size"], model["image_size"])
    logits = built.module(x)
    assert logits.shape == (2, 100)
    torch.nn.functional.cross_entropy(logits, torch.tensor([3, 97])).backward()
    grads = [p.grad for p in built.module.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert len(built.mean) == 3 and built.classifier_name
