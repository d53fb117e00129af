"""The projected wall time of a config's fine-tunes on G GPUs x k jobs per GPU (weightscape.execution.projection,
benchmarks/grid_profile.py --project), from a hand-made rates file: the arithmetic by hand."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, base_config
from weightscape.config import validated_settings
from weightscape.execution.projection import finetune_work, makespan, project

# per job, at k jobs per GPU: 16 training and 32 inference images/s with 2 per GPU, start-up 5 s
RATES = {"device": "hand-made", "measured": "never",
         "models": {"somewhere": {"arch": "efficientnet_lite0", "image_size": 32, "batch_size": 32, "startup_s": 5.0,
                                  "jobs": {"1": {"train_images_per_s": 32.0, "inference_images_per_s": 64.0},
                                           "2": {"train_images_per_s": 16.0, "inference_images_per_s": 32.0}}}}}


def small_settings(tmp_path, **train):
    """fashion_mnist (10 classes), 8 training / 2 val / 6 test images per class, 1 corruption x 2 severities x 2 per
    class, 2 epochs; baseline, dropout 0.5, weight decay 1e-3 and an `add` mix of p = 0.5; one model, one seed."""
    config = base_config(ood={"test_per_class": 2, "corruptions": ["fog"], "severities": [1, 3]},
                         train={"epochs": 2, **train},
                         families={"dropout": [0.5], "weight_decay": [1e-3],
                                   "diversity": {"augment": [], "noise": [], "stacked": []},
                                   "synthetic": {"generator": "ddpm", "replace": [], "add": []}},
                         conditions=[{"name": "added", "family": "synthetic",
                                      "mix": {"scheme": "add", "p": 0.5, "generator": "ddpm"}}],
                         generators=[{"name": "ddpm", "kind": "ddpm", "per_class": 7,
                                      "weights": str(REPO / "resources" / "generators" / "fashion_mnist-ddpm")}])
    return validated_settings(config, base_dir=tmp_path)


def test_the_work_of_each_fine_tune_is_counted_from_the_config(tmp_path, fashion_root):
    work = {row["condition"]: row for row in finetune_work(small_settings(tmp_path))}
    assert set(work) == {"baseline", "dropout_0.5", "weight_decay_0.001", "added"}
    # 8 x 10 images x 2 epochs; the add mix has 8 + 4 per class
    assert {name: row["train_images"] for name, row in work.items()} == {
        "baseline": 160, "dropout_0.5": 160, "weight_decay_0.001": 160, "added": 240}
    # (val 2 x (2 + 1) + test 6 + OOD 1 x 2 x 2) x 10 classes
    assert {row["eval_images"] for row in work.values()} == {160}


def test_the_wall_time_on_g_gpus_at_k_jobs_per_gpu(tmp_path, fashion_root):
    settings = small_settings(tmp_path)
    # at 2 per GPU a job is 5 + 160 / 16 + 160 / 32 = 20 s, the add mix 5 + 240 / 16 + 5 = 25 s
    one = project(settings, RATES, gpus=1, jobs_per_gpu=2)
    assert (one["jobs"], one["lanes"], one["total_job_s"]) == (4, 2, 85.0)
    assert one["wall_s"] == 45.0 and one["lower_bound_s"] == 42.5  # lanes: 25 + 20 and 20 + 20
    assert project(settings, RATES, gpus=2, jobs_per_gpu=2)["wall_s"] == 25.0  # one job per lane
    alone = project(settings, RATES, gpus=1, jobs_per_gpu=1)  # 5 + 5 + 2.5 = 12.5 s, the mix 15 s
    assert (alone["total_job_s"], alone["wall_s"]) == (52.5, 52.5)
    assert one["models"]["lite0"]["measured_as"] == "somewhere"  # found by its arch
    assert one["synthetic_images"] == {"ddpm": 70}
    with pytest.raises(KeyError, match="no rates at 4 jobs per GPU; measured at 1, 2"):
        project(settings, RATES, gpus=1, jobs_per_gpu=4)
    with pytest.raises(KeyError, match="no rates for model lite0"):
        project(settings, {"models": {}}, gpus=1, jobs_per_gpu=1)


def test_makespan_is_longest_first_on_the_free_lane():
    assert makespan([3, 5, 3, 4, 3], lanes=2) == 10  # 5 + 3 | 4 + 3 + 3
    assert makespan([7, 1, 1], lanes=4) == 7 and makespan([2] * 6, lanes=3) == 4


def test_grid_profile_projects_the_paper_config_and_names_its_rates(tmp_path):
    rates = {**RATES, "models": {name: {**RATES["models"]["somewhere"], "arch": arch, "image_size": 224}
                                 for name, arch in (("clip_vit_b32", "timm:vit_base_patch32_clip_224.openai"),
                                                    ("clip_rn50", "timm:resnet50_clip.openai"))}}
    (tmp_path / "rates.json").write_text(json.dumps(rates))
    out = tmp_path / "projection.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "grid_profile.py"), str(REPO), "--configfile",
                             str(REPO / "configs" / "paper.yaml"), "--project", str(tmp_path / "rates.json"),
                             "--jobs-per-gpu", "2", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    projected = json.loads(out.read_text())
    assert projected["jobs"] == 2 * 2 * 31 * 3 and projected["lanes"] == 2  # datasets x models x conditions x seeds
    assert "rates of clip_vit_b32 (224 px, batch 32, 2 per GPU): 16.0 training / 32.0 inference" in result.stdout
    assert f"wall {projected['wall_s'] / 3600:.2f} h" in result.stdout
    assert "synthesize stable_diffusion: 445,500 images" in result.stdout  # 4050 per class x (10 + 100) classes
