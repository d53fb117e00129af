"""Fine-tuning loop and evaluation: hand-computed metrics, optimizer semantics, determinism, learning."""

import json
import os
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import tiny_dataset
from weightscape.augment import augmented_epochs
from weightscape.checkpoints import load_checkpoint
from weightscape.config.conditions import make_condition, noise
from weightscape.data.canonical import load_split
from weightscape.data.prepare import prepare_dataset, prepare_judge_split
from weightscape.data.ood import make_ood_sets
from weightscape.io import atomic_path
from weightscape.inputs import InputSpec, to_model_inputs
from weightscape.runs import JudgeOutputs, RunOutputs, finetune_run, make_reference, train_judge
from weightscape.settings import Condition, Execution, Model, TrainSettings
from weightscape.train import (ResumePoint, classification_metrics, evaluate, expected_calibration_error, fit,
                               make_optimizer, tensor_batches)

TRAIN = TrainSettings(optimizer="adam", lr=1e-2, momentum=0.9, batch_size=8, epochs=3, weight_decay_mode="coupled",
                      bf16=True)
CPU = Execution(device="cpu", threads=1, num_workers=0, eval_batch_size=16)


def test_ece_matches_a_hand_computed_value():
    # confidences 0.95 (right), 0.94 (wrong) share bin (14/15, 1]: |1/2 - 0.945| * 2/4
    #             0.52 (right) is alone in bin (7/15, 8/15], 0.55 (right) alone in bin (8/15, 9/15]
    probs = torch.tensor([[0.95, 0.05], [0.06, 0.94], [0.55, 0.45], [0.48, 0.52]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1])
    expected = (abs(0.5 - 0.945) * 2 + abs(1 - 0.55) + abs(1 - 0.52)) / 4
    assert expected_calibration_error(probs, labels) == pytest.approx(expected, abs=1e-12)
    perfect = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert expected_calibration_error(perfect, torch.tensor([0, 1])) == 0.0


def test_classification_metrics_by_hand():
    probs = torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], dtype=torch.float64)
    metrics = classification_metrics(probs, torch.tensor([0, 1, 1]))
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["nll"] == pytest.approx(-(math.log(0.8) + math.log(0.7) + math.log(0.4)) / 3)


def test_model_inputs_are_three_channel_resized_and_normalized():
    images = np.zeros((2, 28, 28, 1), np.uint8)
    images[1] = 255
    x = to_model_inputs(images, InputSpec(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert torch.all(x[0] == -1) and torch.allclose(x[1], torch.ones_like(x[1]))
    rgb = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    y = to_model_inputs(rgb, InputSpec(8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    assert torch.allclose(y[0], torch.as_tensor(rgb[0]).permute(2, 0, 1).float() / 255)


def test_coupled_and_decoupled_weight_decay_differ_as_documented():
    def one_step(mode):
        weight = nn.Parameter(torch.full((3,), 2.0))
        model = nn.Module()
        model.weight = weight
        optimizer = make_optimizer(model, TRAIN.replace(lr=0.1, weight_decay_mode=mode), weight_decay=0.5)
        weight.grad = torch.zeros(3)
        optimizer.step()
        return type(optimizer), weight.detach()

    coupled_type, coupled = one_step("coupled")
    decoupled_type, decoupled = one_step("decoupled")
    assert coupled_type is torch.optim.Adam and decoupled_type is torch.optim.AdamW
    # coupled: the L2 gradient 0.5 * 2 goes through Adam's normalization -> a full lr step
    assert torch.allclose(coupled, torch.full((3,), 2.0 - 0.1), atol=1e-6)
    # decoupled: w <- w - lr * wd * w, and the zero gradient moves nothing else
    assert torch.allclose(decoupled, torch.full((3,), 2.0 * (1 - 0.1 * 0.5)), atol=1e-6)


def _toy_problem():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 8, 8, generator=generator)
    y = (x[:, 0].mean(dim=(1, 2)) > 0).long()
    return x, y


def _toy_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))


def test_fit_learns_and_is_deterministic_per_seed():
    x, y = _toy_problem()
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        model = _toy_model()
        curve = fit(model, tensor_batches(x, y, 8), TRAIN.replace(epochs=15), weight_decay=0.0, seed=seed,
                    execution=CPU, val=(x, y))
        runs[name] = (curve, torch.cat([p.flatten() for p in model.parameters()]))
    curve = runs["a"][0]
    assert curve[-1]["train_loss"] < 0.5 * curve[0]["train_loss"]
    assert curve[-1]["val_accuracy"] > 0.9
    assert torch.equal(runs["a"][1], runs["b"][1]) and runs["a"][0] == runs["b"][0]
    assert not torch.equal(runs["a"][1], runs["c"][1])


class Killed(Exception):
    pass


def _killed_after(epochs: int):
    """A progress wrapper that dies (like kill -9) when asked for epoch `epochs` + 1."""
    def progress(iterable):
        for i, epoch in enumerate(iterable):
            if i == epochs:
                raise Killed
            yield epoch
    return progress


@pytest.mark.parametrize("augmented", [False, True])
def test_fit_resumes_from_its_epoch_checkpoint_exactly(tmp_path, augmented):
    x, y = _toy_problem()
    images = (x[:, :1].permute(0, 2, 3, 1).sigmoid() * 255).to(torch.uint8).numpy()  # 8x8 gray for augmentation
    spec = InputSpec(8, (0.5,) * 3, (0.5,) * 3)

    def batches():
        if augmented:  # the data order and the augmentation draws both have to continue where they stopped
            return augmented_epochs(images, y, spec, [noise(0.05)], 8)
        return tensor_batches(x, y, 8)

    model = _toy_model() if not augmented else nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Dropout(0.3),
                                                             nn.Linear(144, 2))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    straight = fit(model, batches(), TRAIN.replace(epochs=4), weight_decay=1e-3, seed=5, execution=CPU)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    point = ResumePoint(tmp_path / "checkpoint.pt", {"run": "a"})
    model.load_state_dict(initial)
    with pytest.raises(Killed):
        fit(model, batches(), TRAIN.replace(epochs=4), weight_decay=1e-3, seed=5, execution=CPU,
            progress=_killed_after(2), checkpoint=point)
    assert torch.load(point.path, weights_only=False)["epoch"] == 2
    model.load_state_dict(initial)  # a new process starts from the reference again
    torch.manual_seed(123)  # and with whatever global RNG state
    resumed = fit(model, batches(), TRAIN.replace(epochs=4), weight_decay=1e-3, seed=5, execution=CPU,
                  checkpoint=point)
    assert resumed == straight
    assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)


def test_checkpoint_of_other_settings_is_ignored(tmp_path):
    x, y = _toy_problem()
    point = ResumePoint(tmp_path / "checkpoint.pt", {"lr": 1})
    with pytest.raises(Killed):
        fit(_toy_model(), tensor_batches(x, y, 8), TRAIN, weight_decay=0.0, seed=0, execution=CPU,
            progress=_killed_after(1), checkpoint=point)
    assert ResumePoint(point.path, {"lr": 2}).load() is None and point.load()["epoch"] == 1
    point.path.write_bytes(b"torn")
    assert point.load() is None


def test_fit_reports_divergence_clearly():
    x, y = _toy_problem()
    with pytest.raises(FloatingPointError, match="lower train.lr"):
        fit(_toy_model(), tensor_batches(x * 1e30, y, 8), TRAIN.replace(lr=1e10), weight_decay=0.0, seed=0,
            execution=CPU)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_pipeline_inputs(tmp_path_factory, fashion_root):
    """Real Fashion-MNIST subset + OOD sets + the real pretrained EfficientNet-Lite0 reference."""
    root = tmp_path_factory.mktemp("tiny")
    prepare_dataset(tiny_dataset(), root / "data")
    ood = {"corruptions": ["gaussian_noise", "fog"], "severities": [1, 3], "test_per_class": 2, "seed": 0}
    ood_files = {name: root / "data" / "ood" / f"{name}.npz" for name in ood["corruptions"]}
    make_ood_sets(root / "data" / "test.npz", ood, ood_files)
    model = Model(name="lite0", arch="efficientnet_lite0", weights="pretrained", image_size=32)
    make_reference(model, root / "data" / "classes.json", 0, weights_out=root / "ref.safetensors",
                   info_out=root / "ref.json")
    return root, list(ood_files.values())


def _run(root, ood_files, condition, out, seed=0, execution=CPU):
    return finetune_run(reference=root / "ref.safetensors", reference_info=root / "ref.json", data_dir=root / "data",
                        ood_files=ood_files, condition=Condition.from_dict(condition),
                        train=TRAIN.replace(lr=1e-3, epochs=2), seed=seed, execution=execution,
                        outputs=RunOutputs(out / "weights.safetensors", out / "curve.csv", out / "metrics.json"),
                        checkpoint=out / "checkpoint.pt")


def test_finetune_run_is_reproducible_byte_for_byte(tiny_pipeline_inputs, tmp_path):
    root, ood_files = tiny_pipeline_inputs
    condition = make_condition("dropout_0.3", "dropout", 0.3, dropout=0.3, weight_decay=1e-4)
    metrics = _run(root, ood_files, condition, tmp_path / "a")
    _run(root, ood_files, condition, tmp_path / "b")
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()
    assert (tmp_path / "a" / "weights.safetensors").read_bytes() == (tmp_path / "b" / "weights.safetensors").read_bytes()
    stored = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert stored["id"]["accuracy"] == metrics["id"]["accuracy"]
    assert set(stored["ood"]["by_corruption"]) == {"gaussian_noise", "fog"}
    assert set(stored["ood"]["by_corruption"]["fog"]) == {"1", "3"}
    cells = [c["accuracy"] for s in stored["ood"]["by_corruption"].values() for c in s.values()]
    assert stored["ood"]["mean"]["accuracy"] == pytest.approx(np.mean(cells))
    assert not (tmp_path / "a" / "checkpoint.pt").exists()
    _run(root, ood_files, condition, tmp_path / "c", seed=1)
    assert (tmp_path / "c" / "weights.safetensors").read_bytes() != (tmp_path / "a" / "weights.safetensors").read_bytes()


def test_training_sees_the_augmented_images(tiny_pipeline_inputs):
    """The public code of the paper sometimes built an augmented set and trained on the clean one: here the
    batches that reach the model are the augmented images, in the same order as the clean ones."""
    root, _ = tiny_pipeline_inputs
    images, labels = load_split(root / "data" / "train.npz")
    spec = InputSpec(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    seen = {}

    def capture(name):
        def hook(module, args):
            seen.setdefault(name, args[0].clone())
        return hook

    for name, epochs in (("clean", tensor_batches(to_model_inputs(images, spec), labels, 8)),
                         ("flipped", augmented_epochs(images, labels, spec, [{"name": "vflip", "args": {"p": 1.0}}], 8))):
        model = _toy_model_for(spec)
        model.register_forward_pre_hook(capture(name))
        fit(model, epochs, TRAIN.replace(epochs=1), weight_decay=0.0, seed=0, execution=CPU)
    assert torch.allclose(seen["flipped"], seen["clean"].flip(-2), atol=1e-5)
    assert not torch.allclose(seen["flipped"], seen["clean"], atol=1e-3)


def _toy_model_for(spec):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * spec.image_size ** 2, 10))


def test_finetune_with_noise_differs_from_baseline_and_is_reproducible(tiny_pipeline_inputs, tmp_path):
    root, ood_files = tiny_pipeline_inputs
    noisy = make_condition("noise_0.05", "diversity", 0.05, kind="noise", transforms=[noise(0.05)])
    _run(root, ood_files, make_condition("baseline", "baseline"), tmp_path / "base")
    _run(root, ood_files, noisy, tmp_path / "a")
    _run(root, ood_files, noisy, tmp_path / "b")
    weights = {name: (tmp_path / name / "weights.safetensors").read_bytes() for name in ("base", "a", "b")}
    assert weights["a"] == weights["b"] and weights["a"] != weights["base"]


def test_judge_learns_from_its_own_real_split_and_reloads_to_the_same_accuracy(tiny_pipeline_inputs, tmp_path):
    root, _ = tiny_pipeline_inputs
    prepare_judge_split(tiny_dataset().source_options(), 20, 0, tmp_path / "judge_train.npz")
    classes = json.loads((root / "data" / "classes.json").read_text())["classes"]
    out = {name: tmp_path / name for name in ("weights.safetensors", "model.json", "metrics.json")}
    metrics = train_judge(reference=root / "ref.safetensors", reference_info=root / "ref.json",
                          judge_npz=tmp_path / "judge_train.npz", test_npz=root / "data" / "test.npz", classes=classes,
                          train=TRAIN.replace(lr=1e-3), judge={"epochs": 2, "seed": 0}, execution=CPU,
                          outputs=JudgeOutputs(*out.values()))
    test_images, test_labels = load_split(root / "data" / "test.npz")
    reference, info = load_checkpoint(root / "ref.safetensors", root / "ref.json")
    spec = InputSpec.from_info(info)
    chance = evaluate(reference, to_model_inputs(test_images, spec), test_labels, 64, torch.device("cpu"))
    assert metrics["n_train"] == 200 and metrics["per_class_train"] == 20
    assert metrics["test"]["accuracy"] > chance["accuracy"] + 0.3  # 200 real images teach the new head
    # the test split is balanced (6 per class): overall accuracy is the mean of the per-class ones
    assert metrics["test"]["accuracy"] == pytest.approx(np.mean(list(metrics["test_accuracy_per_class"].values())))
    judge, judge_info = load_checkpoint(out["weights.safetensors"], out["model.json"])
    assert judge_info["judge"] == {"n_train": 200, "per_class_train": 20, "epochs": 2, "seed": 0}
    reloaded = evaluate(judge, to_model_inputs(test_images, spec), test_labels, 64, torch.device("cpu"))
    assert reloaded["accuracy"] == metrics["test"]["accuracy"]
    assert json.loads(out["metrics.json"].read_text())["test"]["accuracy"] == metrics["test"]["accuracy"]


def test_curvature_every_epoch_joins_the_curve_and_leaves_training_untouched(tiny_pipeline_inputs, tmp_path):
    root, ood_files = tiny_pipeline_inputs
    condition = make_condition("dropout_0.3", "dropout", 0.3, dropout=0.3)
    _run(root, ood_files, condition, tmp_path / "plain")
    curvature = {"per_class": 1, "n_probes": 2, "tol": 0.1, "max_iter": 3, "seed": 0}
    finetune_run(reference=root / "ref.safetensors", reference_info=root / "ref.json", data_dir=root / "data",
                 ood_files=ood_files, condition=Condition.from_dict(condition), train=TRAIN.replace(lr=1e-3, epochs=2),
                 seed=0, execution=CPU, outputs=RunOutputs(*(tmp_path / "measured" / name for name in
                                                             ("weights.safetensors", "curve.csv", "metrics.json"))),
                 curvature=curvature)
    curve = (tmp_path / "measured" / "curve.csv").read_text().splitlines()
    header = curve[0].split(",")
    assert {"hessian_trace", "hessian_trace_se", "hessian_top_eig"} <= set(header) and len(curve) == 3
    assert all(float(row.split(",")[header.index("hessian_trace")]) > 0 for row in curve[1:])
    # measuring in eval mode with its own generators changes nothing of the training (dropout masks included)
    assert ((tmp_path / "plain" / "weights.safetensors").read_bytes()
            == (tmp_path / "measured" / "weights.safetensors").read_bytes())


def test_predictions_do_not_depend_on_the_eval_batch_size():
    """train.eval_batch_size is an execution setting (changing it reruns no job), so the probabilities must be
    bit-identical at every allowed batch size, in the channels_last layout evaluation runs in. Batches of fewer
    than 16 images differ by float32 rounding, so a short last batch joins the one before."""
    from weightscape.models import build_model
    from weightscape.train import MIN_EVAL_BATCH, eval_batch_bounds, predict

    model = build_model("efficientnet_lite0", 10, weights="random", head_seed=0).module
    inputs = torch.rand(96, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    reference = predict(model, inputs, 96, torch.device("cpu"))
    for batch_size in (MIN_EVAL_BATCH, 17, 40, 95, 128):  # tails of 0, 11 (joined), 16, 1 (joined), none
        assert torch.equal(predict(model, inputs, batch_size, torch.device("cpu")), reference), batch_size
    assert eval_batch_bounds(96, 17) == [(0, 17), (17, 34), (34, 51), (51, 68), (68, 96)]
    assert eval_batch_bounds(96, 40) == [(0, 40), (40, 80), (80, 96)]
    assert eval_batch_bounds(10, 128) == [(0, 10)]


REUSE_PROBE = """
import resource, sys, types, torch
if sys.argv[1] == "job":  # set up as every pipeline job is (the fork server off: this process is the job)
    from weightscape.execution import job
    job(types.SimpleNamespace(threads=1, log=[], config={}), "probe").__enter__()
else:
    torch.set_num_threads(1)
from weightscape.models import build_model
model = build_model("efficientnet_lite0", 10, weights="random", head_seed=0).module.eval()
inputs = torch.rand(100, 3, 48, 48).contiguous(memory_format=torch.channels_last)  # one OOD cell, one batch
with torch.inference_mode():
    for _ in range(2):  # warm-up: let glibc's own threshold adapt first
        model(inputs)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        model(inputs)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 300)
"""


def test_jobs_reuse_freed_memory_instead_of_faulting_it_in_again():
    """With glibc's defaults every evaluation batch of EfficientNet-Lite0 page-faults its activations in again;
    a job's set-up (weightscape.execution.job) keeps freed memory for reuse (runtime.reuse_freed_memory)."""
    import subprocess
    import sys

    def faults_per_image(mode: str) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run([sys.executable, "-c", REUSE_PROBE, mode], check=True, capture_output=True, text=True,
                             env={**env, "WEIGHTSCAPE_FORK_SERVER": "0"})
        return float(out.stdout.split()[-1])

    default, job = faults_per_image("default"), faults_per_image("job")  # page faults per image
    assert default > 50, default
    assert job < default / 10, (job, default)


def test_ood_cells_in_one_pass_equal_one_pass_per_cell(tiny_pipeline_inputs):
    """evaluate_ood predicts every corruption x severity cell in one pass; each cell's accuracy and ECE must be
    exactly what evaluating that cell alone gives."""
    from weightscape.runs import evaluate_ood

    root, ood_files = tiny_pipeline_inputs
    model, info = load_checkpoint(root / "ref.safetensors", root / "ref.json")
    spec = InputSpec(info["image_size"], info["mean"], info["std"])
    cpu = torch.device("cpu")
    result = evaluate_ood(model, ood_files, spec, 32, cpu)  # 4 cells of 20 images: batches 32, 32, 16
    expected = {}
    for path in ood_files:
        with np.load(path) as archive:
            for i, severity in enumerate(archive["severities"]):
                metrics = evaluate(model, to_model_inputs(archive["images"][i], spec), archive["labels"], 20, cpu)
                expected.setdefault(path.stem, {})[str(int(severity))] = {k: metrics[k] for k in ("accuracy", "ece")}
    assert result["by_corruption"] == expected
    cells = [cell for severities in expected.values() for cell in severities.values()]
    assert result["mean"]["accuracy"] == float(np.mean([c["accuracy"] for c in cells]))
    assert len(cells) == 4
