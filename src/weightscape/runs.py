"""Pipeline stages around training: the pretrained reference, one fine-tuning run, a condition's diversity.

Each function reads and writes files only through its arguments, so the Snakemake adapters stay thin and the
stages are callable from tests and notebooks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from weightscape.augment import AugmentedImages, augmented_epochs
from weightscape.checkpoints import load_checkpoint, save_weights
from weightscape.data.canonical import load_split, training_split
from weightscape.inputs import InputSpec, to_model_inputs
from weightscape.io import file_sha256, read_json, write_csv, write_json
from weightscape.models import build_model, insert_dropout
from weightscape.settings import Condition, Execution, Mix, Model, TrainingData, TrainSettings
from weightscape.train import (ResumePoint, accuracy_by_class, classification_metrics, evaluate, fit, predict,
                               tensor_batches)

log = logging.getLogger(__name__)


class PhaseClock:
    """Wall seconds of a job's phases, logged as one line ``phase seconds: startup 4.10, load 0.52, ...`` so that
    benchmarks/grid_profile.py can split a job's time without a profiler. `startup` is the time from the start of
    the job's process (or its fork: weightscape.execution.forkserver) to the clock's creation (interpreter, imports,
    the adapter)."""

    def __init__(self):
        from weightscape.runtime import process_start_time

        self.seconds: dict[str, float] = {"startup": max(0.0, time.time() - process_start_time())}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{phase} {seconds:.2f}" for phase, seconds in self.seconds.items())


def make_reference(model: Model, classes_json: str | Path, seed: int, *, weights_out: str | Path,
                   info_out: str | Path) -> dict:
    """The starting point of fine-tuning: pretrained backbone + a new head initialized with `seed`."""
    num_classes = len(read_json(classes_json)["classes"])
    built = build_model(model.arch, num_classes, weights=model.weights, head_seed=seed)
    info = {"arch": model.arch, "weights": model.weights, "num_classes": num_classes,
            "image_size": model.image_size, "mean": list(built.mean), "std": list(built.std),
            "classifier": built.classifier_name, "head_seed": seed,
            "parameters": sum(p.numel() for p in built.module.parameters())}
    save_weights(built.module, weights_out)
    write_json(info_out, info)
    log.info("reference %s: %d parameters, %d classes", model.arch, info["parameters"], num_classes)
    return info


@dataclass(frozen=True)
class RunOutputs:
    """The files of one fine-tuning run (rule finetune's outputs)."""

    weights: str | Path
    curve: str | Path
    metrics: str | Path


@dataclass(frozen=True)
class JudgeOutputs:
    """The files of the fidelity judge (rule train_judge's outputs)."""

    weights: str | Path
    info: str | Path
    metrics: str | Path


def training_mix(real: tuple[np.ndarray, np.ndarray], synthetic_npz: str | Path | None, mix: Mix,
                 seed: int) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """((images, labels) of a synthetic condition's training set, number of synthetic images in it)."""
    from weightscape.synth.mixing import mix_training_set

    if synthetic_npz is None:
        raise ValueError(f"mix {mix} needs the synthetic images of generator {mix.generator!r}")
    images, labels, is_synthetic = mix_training_set(*real, *load_split(synthetic_npz), mix.scheme, mix.p, seed)
    log.info("%s p=%g: %d real + %d synthetic training images", mix.scheme, mix.p,
             int((~is_synthetic).sum()), int(is_synthetic.sum()))
    return (images, labels), int(is_synthetic.sum())


def evaluate_ood(model, ood_files: Iterable[str | Path], spec: InputSpec, batch_size: int, device) -> dict:
    """Accuracy and ECE per corruption and severity, and their means over everything.

    Every cell's images go through the model in one pass of `batch_size` batches, not one short pass per cell
    (70 in the default config, each paying its own set-up): the probabilities are the same bit for bit, as at
    any batch size (train.predict)."""
    cells, inputs = [], []  # (corruption, severity, labels) and the model inputs of each cell, in order
    for path in ood_files:
        with np.load(path) as archive:
            images, labels, severities = archive["images"], archive["labels"], archive["severities"]
        for i, severity in enumerate(severities):
            cells.append((Path(path).stem, str(int(severity)), labels))
            inputs.append(to_model_inputs(images[i], spec))
    by_corruption: dict[str, dict] = {}
    if inputs:
        probs = predict(model, torch.cat(inputs), batch_size, device).split([len(x) for x in inputs])
        for (corruption, severity, labels), cell_probs in zip(cells, probs):
            metrics = classification_metrics(cell_probs, torch.as_tensor(labels))
            by_corruption.setdefault(corruption, {})[severity] = {k: metrics[k] for k in ("accuracy", "ece")}
    values = [cell for severities in by_corruption.values() for cell in severities.values()]
    mean = {k: float(np.mean([c[k] for c in values])) for k in ("accuracy", "ece")} if values else {}
    return {"mean": mean, "by_corruption": by_corruption}


def finetune_run(*, reference: str | Path, reference_info: str | Path, data_dir: str | Path,
                 ood_files: list[str | Path], condition: Condition, train: TrainSettings, seed: int,
                 execution: Execution, outputs: RunOutputs, synthetic_npz: str | Path | None = None,
                 checkpoint: str | Path | None = None, curvature: dict | None = None, subset: dict | None = None,
                 progress: Callable[[Iterable], Iterable] = lambda it: it) -> dict:
    """Fine-tune the reference under one condition and seed; write weights, curve and metrics; return the metrics.
    With `curvature` (the curvature settings), the Hessian trace and top eigenvalue are measured after every epoch
    on the seed's fixed sample and join the curve.

    With `subset` (Dataset.subset_params: datasets[].resample_per_seed) the training split is the seed's own draw
    from data_dir/pool.npz. Synthetic conditions train on the real split mixed with `synthetic_npz`
    (weightscape.synth.mixing), the draw seeded by the run's seed. With `checkpoint` (a file path) the run saves its state after every epoch, resumes a
    matching saved state (e.g. after a kill, also with other execution settings) and deletes the file once the
    outputs are written. The execution settings are recorded in metrics.json as provenance; the time of each phase
    goes to the log.
    """
    clock = PhaseClock()
    device = execution.torch_device()
    model, info = load_checkpoint(reference, reference_info)
    if condition.dropout > 0:
        instrumented = insert_dropout(model, condition.dropout, info["classifier"])
        log.info("dropout p=%g on %d modules", condition.dropout, len(instrumented))
    spec = InputSpec.from_info(info)
    data_dir = Path(data_dir)
    splits = {name: load_split(data_dir / f"{name}.npz") for name in ("val", "test")}
    splits["train"] = training_split(data_dir / ("pool.npz" if subset else "train.npz"), subset, seed)
    splits = {name: splits[name] for name in ("train", "val", "test")}
    n_synthetic = 0
    if condition.mix:
        splits["train"], n_synthetic = training_mix(splits["train"], synthetic_npz, condition.mix, seed)
    inputs = {name: (to_model_inputs(images, spec), torch.as_tensor(labels)) for name, (images, labels) in
              splits.items()}
    if condition.transforms:  # augmented anew every epoch, from the raw uint8 images
        epoch_batches = augmented_epochs(*splits["train"], spec, list(condition.transforms), train.batch_size,
                                         execution.num_workers)
    else:
        epoch_batches = tensor_batches(*inputs["train"], train.batch_size)
    log.info("fine-tuning %s, seed %d, on %s", condition.name, seed, device)
    resume = None
    if checkpoint is not None:
        resume = ResumePoint(checkpoint, {"condition": condition.params(), "train": train.params(), "seed": seed,
                                          "reference": file_sha256(reference), "curvature": curvature})
    epoch_metrics = None
    if curvature is not None:
        from weightscape.curvature import measure_curvature

        sample = curvature_batch(Path(data_dir) / ("pool.npz" if subset else "train.npz"), spec,
                                 curvature["per_class"], seed, subset)
        settings = {k: curvature[k] for k in ("n_probes", "tol", "max_iter", "seed")}

        def epoch_metrics(net):
            return measure_curvature(net, sample, device=device, **settings).as_dict()
    clock.lap("load")
    curve = fit(model, epoch_batches, train, weight_decay=condition.weight_decay, seed=seed, execution=execution,
                val=inputs["val"], progress=progress, checkpoint=resume, epoch_metrics=epoch_metrics)
    clock.lap("train")
    batch = execution.eval_batch_size
    metrics = {"condition": condition.name, "family": condition.family, "level": condition.level,
               "seed": seed, "n_train": len(splits["train"][1]), "n_synthetic": n_synthetic,
               "epochs": train.epochs,
               "final_train_loss": curve[-1]["train_loss"],
               "final_train_accuracy": curve[-1]["train_accuracy"],
               "id": evaluate(model, *inputs["test"], batch, device),
               "val": evaluate(model, *inputs["val"], batch, device) if len(inputs["val"][0]) else {},
               "ood": evaluate_ood(model, ood_files, spec, batch, device),
               "execution": execution.provenance()}
    clock.lap("evaluate")
    save_weights(model, outputs.weights)
    write_csv(outputs.curve, pd.DataFrame(curve))
    write_json(outputs.metrics, metrics)
    if resume is not None:
        resume.remove()
    clock.lap("write")
    log.info("%s seed %d: ID accuracy %.3f, ECE %.3f, OOD accuracy %.3f", condition.name, seed,
             metrics["id"]["accuracy"], metrics["id"]["ece"], metrics["ood"]["mean"].get("accuracy", float("nan")))
    log.info("phase seconds: %s", clock)
    return metrics


def train_judge(*, reference: str | Path, reference_info: str | Path, judge_npz: str | Path,
                test_npz: str | Path, classes: list[str], train: TrainSettings, judge: dict, execution: Execution,
                outputs: JudgeOutputs, progress: Callable[[Iterable], Iterable] = lambda it: it) -> dict:
    """The fidelity judge: the reference fine-tuned (no augmentation, no regularizer) on the judge's real training
    split for `judge["epochs"]` epochs (overriding `train.epochs`), seeded by `judge["seed"]`; writes its weights,
    a model.json that rebuilds it, and its accuracy on the real test split overall and per class (the ceiling class
    consistency is read against)."""
    device = execution.torch_device()
    model, info = load_checkpoint(reference, reference_info)
    spec = InputSpec.from_info(info)
    images, labels = load_split(judge_npz)
    test_images, test_labels = load_split(test_npz)
    settings = train.replace(epochs=judge["epochs"])
    curve = fit(model, tensor_batches(to_model_inputs(images, spec), labels, settings.batch_size), settings,
                weight_decay=0.0, seed=judge["seed"], execution=execution, progress=progress)
    probs = predict(model, to_model_inputs(test_images, spec), execution.eval_batch_size, device)
    test = classification_metrics(probs, torch.as_tensor(test_labels))
    per_class = accuracy_by_class(probs.argmax(1).numpy(), test_labels, classes)
    metrics = {"n_train": int(len(labels)), "per_class_train": int(np.bincount(labels).max()),
               "epochs": judge["epochs"], "seed": judge["seed"], "final_train_loss": curve[-1]["train_loss"],
               "test": test, "test_accuracy_per_class": per_class, "execution": execution.provenance()}
    save_weights(model, outputs.weights)
    write_json(outputs.info, {**info, "judge": {k: metrics[k] for k in ("n_train", "per_class_train", "epochs",
                                                                          "seed")}})
    write_json(outputs.metrics, metrics)
    log.info("judge: %d real training images, %d epoch(s); real test accuracy %.3f", len(labels), judge["epochs"],
             test["accuracy"])
    return metrics


def condition_diversity(*, train_npz: str | Path, reference: str | Path, reference_info: str | Path,
                        condition: str, data: TrainingData, diversity: dict, seeds: list[int],
                        execution: Execution, out_json: str | Path, synthetic_npz: str | Path | None = None,
                        subset: dict | None = None) -> dict:
    """Vendi scores of the training distribution `data` produces (pixel, embedding, weighted) for the condition
    named `condition` (its family and level are the summary's labels, not part of the measurement), measured on
    seeded class-balanced samples of augmented training images in the pretrained backbone's embedding space (on
    `execution`'s device): one draw per grid seed, so the statistics get an interval from the draws.

    Draw s samples (and augments) with seed `diversity["seed"] + s`; for a synthetic mix it measures the training
    set the run of seed s trained on (the mix drawn with s), its views paired row by row with real images of the
    same class, so rho compares the mixed set's embeddings with the real set's. With `subset`
    (datasets[].resample_per_seed, `train_npz` the pool) draw s measures seed s's own training subset.
    """
    model, info = load_checkpoint(reference, reference_info)
    model.to(execution.torch_device())
    spec = InputSpec.from_info(info)
    draws = []
    for seed in seeds:
        images, labels = training_split(train_npz, subset, seed)
        draws.append(_diversity_draw(model, info["classifier"], spec, images, labels, data, synthetic_npz,
                                     min(diversity["sample_size"], len(labels)), diversity["seed"] + seed, seed))
    result = {"condition": condition, "draws": draws}
    write_json(out_json, result)
    for scores in draws:
        log.info("%s, draw of seed %d: pixel VS %.3f, embedding VS %.3f, rho %.3f, weighted VS %.3f",
                 condition, scores["seed"], scores["vendi_pixel"], scores["vendi_embedding"], scores["rho"],
                 scores["vendi_weighted"])
    return result


def _diversity_draw(model, classifier: str, spec: InputSpec, images: np.ndarray, labels: np.ndarray,
                    data: TrainingData, synthetic_npz, sample_size: int, sample_seed: int, run_seed: int) -> dict:
    """One draw of condition_diversity: the scores of a `sample_seed` sample of the training set of `run_seed`."""
    from weightscape.diversity import class_balanced_sample, measure_diversity, same_label_order

    source = None
    if data.mix:
        (mixed, mixed_labels), _ = training_mix((images, labels), synthetic_npz, data.mix, run_seed)
        real_labels = labels[class_balanced_sample(labels, sample_size, sample_seed)]
        picked = class_balanced_sample(mixed_labels, sample_size, sample_seed)
        source = mixed[picked][same_label_order(mixed_labels[picked], real_labels)]

    def make_view(sample: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        sample = sample if source is None else source
        views = AugmentedImages(sample, np.zeros(len(sample), np.int64), spec, list(data.transforms))
        with torch.random.fork_rng(devices=[]):  # augmentation draws from the measurement's own seed
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            return views.ready([views.augmented(i) for i in range(len(views))])

    scores = measure_diversity(images, labels, model, classifier, spec, make_view, sample_size, sample_seed)
    return {"seed": run_seed, **scores}


def curvature_batch(train_npz: str | Path, spec: InputSpec, per_class: int, seed: int,
                    subset: dict | None = None) -> list[tuple]:
    """The fixed sample curvature is measured on: `per_class` training images of every class drawn with the run's
    `seed` (the same images for every condition of that seed) from the seed's training split (`subset`: see
    finetune_run), as one batch of model inputs."""
    from weightscape.curvature import curvature_sample

    images, labels = training_split(train_npz, subset, seed)
    index = curvature_sample(labels, per_class, seed)
    return [(to_model_inputs(images[index], spec), torch.as_tensor(labels[index]))]


def measure_run_curvature(*, weights: str | Path, info: str | Path, train_npz: str | Path, curvature: dict,
                          seed: int, execution: Execution, out_json: str | Path, subset: dict | None = None) -> dict:
    """Hessian trace and dominant eigenvalue of one model's training loss (weightscape.curvature) on the seed's
    fixed sample; written to `out_json` with the settings and the execution provenance."""
    from weightscape.curvature import measure_curvature

    model, meta = load_checkpoint(weights, info)
    batch = curvature_batch(train_npz, InputSpec.from_info(meta), curvature["per_class"], seed, subset)
    result = measure_curvature(model, batch, n_probes=curvature["n_probes"], tol=curvature["tol"],
                               max_iter=curvature["max_iter"], seed=curvature["seed"],
                               device=execution.torch_device())
    record = {**result.as_dict(), "sample_size": int(len(batch[0][1])), "sample_seed": seed,
              "execution": execution.provenance()}
    write_json(out_json, record)
    log.info("Hessian trace %.4g +- %.2g (%d probes), top eigenvalue %.4g (%d iterations%s) on %d images",
             result.trace, result.trace_se, result.n_probes, result.top_eig, result.power_iters,
             "" if result.converged else ", not converged", record["sample_size"])
    return record
