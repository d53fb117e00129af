"""The fine-tuning loop and its evaluation (accuracy, NLL, ECE). Knows nothing about files or the pipeline."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from weightscape.inputs import batches
from weightscape.io import atomic_path
from weightscape.settings import Execution, TrainSettings, canonical

ECE_BINS = 15
log = logging.getLogger(__name__)

# (optimizer name, weight-decay mode) -> torch optimizer. torch's Adam/SGD add weight_decay * w to the gradient
# (coupled L2, what the paper used); AdamW decays the weights directly (decoupled).
OPTIMIZERS: dict[tuple[str, str], Callable[..., torch.optim.Optimizer]] = {
    ("adam", "coupled"): torch.optim.Adam,
    ("adam", "decoupled"): torch.optim.AdamW,
    ("sgd", "coupled"): torch.optim.SGD,
}


def make_optimizer(model: nn.Module, train: TrainSettings, weight_decay: float) -> torch.optim.Optimizer:
    """The configured optimizer over all parameters (the whole network is fine-tuned, as in the paper)."""
    factory = OPTIMIZERS[(train.optimizer, train.weight_decay_mode)]
    extra = {"momentum": train.momentum} if train.optimizer == "sgd" else {}
    return factory(model.parameters(), lr=train.lr, weight_decay=weight_decay, **extra)


def accelerated(device: torch.device, bf16: bool = True):
    """bf16 autocast on CUDA; nothing on the CPU, whose path stays plain float32 (and bit-reproducible)."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch; image batches go channels_last (NHWC), the layout convolutions run fastest in, on the CPU
    (oneDNN; benchmarks/train_loop.py measures it) as on CUDA."""
    if x.dim() == 4:
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device, non_blocking=True)


EpochBatches = Callable[[torch.Generator], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def tensor_batches(inputs: torch.Tensor, labels, batch_size: int) -> EpochBatches:
    """Epochs over pre-processed inputs (no augmentation: the whole set is prepared once)."""
    labels = torch.as_tensor(labels)

    def epoch(generator: torch.Generator):
        for index in batches(len(inputs), batch_size, generator):
            yield inputs[index], labels[index]

    return epoch


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """L1 ECE over `bins` equal-width confidence bins: sum_b |acc_b - conf_b| * n_b / n.

    Written here (10 lines) rather than adding torchmetrics for one function; tested against hand-computed values.
    """
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).double()
    confidence = confidence.double()
    bin_index = torch.clamp((confidence * bins).ceil().long() - 1, 0, bins - 1)  # (lo, hi] bins as in Guo et al.
    acc = torch.zeros(bins, dtype=torch.float64).index_add_(0, bin_index, correct)
    conf = torch.zeros(bins, dtype=torch.float64).index_add_(0, bin_index, confidence)
    return float((acc - conf).abs().sum() / max(len(labels), 1))


#: On the CPU, batches of fewer images than this run other kernels whose float32 rounding differs (by ~1e-7 for
#: EfficientNet-Lite0); from 16 images on, every image's output is bit-identical at any batch size.
MIN_EVAL_BATCH = 16


def eval_batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each evaluation batch: `batch_size` images each, a last batch of fewer than
    MIN_EVAL_BATCH joining the one before, so that the outputs do not depend on the batch size (an execution
    setting, which reruns no job)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < MIN_EVAL_BATCH:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


@torch.inference_mode()  # no autograd bookkeeping at all: faster than no_grad, the same numbers
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Softmax probabilities (float64, on the CPU) in eval mode; bit-identical at every batch size of at least
    MIN_EVAL_BATCH (tests/test_train.py)."""
    model.eval()
    model.to(device, memory_format=torch.channels_last)  # where and in the layout the batches go (to_device)
    with accelerated(device):
        outputs = [model(to_device(inputs[start:stop], device)).double().softmax(dim=1).cpu()
                   for start, stop in eval_batch_bounds(len(inputs), batch_size)]
    return torch.cat(outputs)


def accuracy_by_class(predicted: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Share of each class's images predicted as that class (classes without images are left out)."""
    hits = predicted == labels
    return {name: float(hits[labels == i].mean()) for i, name in enumerate(classes) if (labels == i).any()}


def classification_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, negative log-likelihood and ECE of predicted probabilities."""
    labels = torch.as_tensor(labels)
    nll = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    return {"accuracy": float((probs.argmax(1) == labels).double().mean()), "nll": nll,
            "ece": expected_calibration_error(probs, labels)}


def evaluate(model: nn.Module, inputs: torch.Tensor, labels, batch_size: int, device: torch.device) -> dict:
    return classification_metrics(predict(model, inputs, batch_size, device), torch.as_tensor(labels))


def fit(model: nn.Module, epoch_batches: EpochBatches, train: TrainSettings, *, weight_decay: float, seed: int,
        execution: Execution, val: tuple[torch.Tensor, torch.Tensor] | None = None,
        progress: Callable[[Iterable], Iterable] = lambda it: it,
        checkpoint: ResumePoint | None = None,
        epoch_metrics: Callable[[nn.Module], dict] | None = None) -> list[dict]:
    """Fine-tune `model` in place on the batches `epoch_batches(generator)` yields each epoch (see tensor_batches
    and weightscape.augment.augmented_batches); return one curve row per epoch.

    `seed` fixes the data order, the augmentation draws and every random draw in the network (dropout masks), so
    the same seed on the same device gives the same weights. `execution` says where (its device) and how the
    validation set is evaluated (its batch size). With `checkpoint`, the state after every epoch is saved and a
    matching saved state is resumed: the result equals an uninterrupted run's. `epoch_metrics(model)` adds its
    values to each epoch's row (it must leave the model's mode and the global RNG as it found them).
    """
    device = execution.torch_device()
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, train, weight_decay)
    curve, step, done = [], 0, 0
    if checkpoint is not None:
        state = checkpoint.load()
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            order.set_state(state["order"])
            torch.set_rng_state(state["torch_rng"])
            if device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            curve, step, done = state["curve"], state["step"], state["epoch"]
            log.info("resuming from %s after epoch %d", checkpoint.path, done)
    for epoch in progress(range(done + 1, train.epochs + 1)):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for x, y in epoch_batches(order):
            x, y = to_device(x, device), y.to(device, non_blocking=True)
            with accelerated(device, train.bf16):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            step += 1
        row = {"epoch": epoch, "step": step, "train_loss": loss_sum / seen, "train_accuracy": correct / seen}
        if val is not None and len(val[0]):
            metrics = evaluate(model, val[0], val[1], execution.eval_batch_size, device)
            row.update({f"val_{k}": v for k, v in metrics.items()})
        if epoch_metrics is not None:
            row.update(epoch_metrics(model))
        if not math.isfinite(row["train_loss"]):
            raise FloatingPointError(f"training loss became {row['train_loss']} in epoch {epoch}; lower train.lr")
        curve.append(row)
        log.info("epoch %d/%d: " + ", ".join(f"{k} %.4f" for k in row if k not in ("epoch", "step")), epoch,
                 train.epochs, *[v for k, v in row.items() if k not in ("epoch", "step")])
        if checkpoint is not None and epoch < train.epochs:
            checkpoint.save({"epoch": epoch, "step": step, "curve": curve, "model": model.state_dict(),
                             "optimizer": optimizer.state_dict(), "order": order.get_state(),
                             "torch_rng": torch.get_rng_state(),
                             "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None})
    return curve


class ResumePoint:
    """The resumable state of one training job in one file, tied to a fingerprint of everything that determines
    the result (condition, train settings, seed: their `params()`, never execution settings such as threads): a
    file written under another fingerprint is ignored."""

    def __init__(self, path: str | Path, fingerprint: dict):
        self.path = Path(path)
        self.fingerprint = json.dumps(canonical(fingerprint), sort_keys=True, default=str)

    def load(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a torn or foreign file: start over rather than fail
            log.warning("ignoring unreadable checkpoint %s (%s)", self.path, exc)
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring %s: written for other settings", self.path)
            return None
        return state

    def save(self, state: dict) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({**state, "fingerprint": self.fingerprint}, tmp)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
