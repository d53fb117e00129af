"""The fine-tuning loop and its evaluation (accuracy, NLL, ECE). Knows nothing about files or the pipeline."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF

ECE_BINS = 15
log = logging.getLogger(__name__)

# (optimizer name, weight-decay mode) -> torch optimizer. torch's Adam/SGD add weight_decay * w to the gradient
# (coupled L2, what the paper used); AdamW decays the weights directly (decoupled).
OPTIMIZERS: dict[tuple[str, str], Callable[..., torch.optim.Optimizer]] = {
    ("adam", "coupled"): torch.optim.Adam,
    ("adam", "decoupled"): torch.optim.AdamW,
    ("sgd", "coupled"): torch.optim.SGD,
}


@dataclass(frozen=True)
class InputSpec:
    """How raw uint8 images become model inputs: resolution and the model's own normalization."""
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def to_model_inputs(images: np.ndarray | torch.Tensor, spec: InputSpec, chunk: int = 2048) -> torch.Tensor:
    """uint8 N x H x W x C (C = 1 or 3) -> normalized float32 N x 3 x S x S (gray is repeated to 3 channels)."""
    images = torch.as_tensor(images)
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    out = torch.empty(len(images), 3, spec.image_size, spec.image_size)
    for start in range(0, len(images), chunk):
        batch = images[start:start + chunk].permute(0, 3, 1, 2)
        batch = batch.expand(-1, 3, -1, -1) if batch.shape[1] == 1 else batch
        batch = TF.to_dtype(batch, torch.float32, scale=True)
        if batch.shape[-1] != spec.image_size or batch.shape[-2] != spec.image_size:
            batch = TF.resize(batch, [spec.image_size, spec.image_size], antialias=True)
        out[start:start + len(batch)] = (batch - mean) / std
    return out


def make_optimizer(model: nn.Module, train: dict, weight_decay: float) -> torch.optim.Optimizer:
    """The configured optimizer over all parameters (the whole network is fine-tuned, as in the paper)."""
    factory = OPTIMIZERS[(train["optimizer"], train["weight_decay_mode"])]
    extra = {"momentum": train["momentum"]} if train["optimizer"] == "sgd" else {}
    return factory(model.parameters(), lr=train["lr"], weight_decay=weight_decay, **extra)


def batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterable[torch.Tensor]:
    """Index batches of one epoch: shuffled by `generator`, in order when it is None. The last batch may be short."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return order.split(batch_size)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """L1 ECE over `bins` equal-width confidence bins: sum_b |acc_b - conf_b| * n_b / n.

    Written here (10 lines) rather than adding torchmetrics for one function; tested against hand-computed values.
    """
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).double()
    confidence = confidence.double()
    bin_index = torch.clamp((confidence * bins).ceil().long() - 1, 0, bins - 1)  # (lo, hi] bins as in Guo et al.
    total = torch.zeros(bins, dtype=torch.float64).index_add_(0, bin_index, torch.ones_like(confidence))
    acc = torch.zeros(bins, dtype=torch.float64).index_add_(0, bin_index, correct)
    conf = torch.zeros(bins, dtype=torch.float64).index_add_(0, bin_index, confidence)
    return float((acc - conf).abs().sum() / max(len(labels), 1))


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Softmax probabilities (float64, on the CPU) in eval mode."""
    model.eval()
    outputs = [model(inputs[i:i + batch_size].to(device)).double().softmax(dim=1).cpu()
               for i in range(0, len(inputs), batch_size)]
    return torch.cat(outputs)


def classification_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, negative log-likelihood and ECE of predicted probabilities."""
    labels = torch.as_tensor(labels)
    nll = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    return {"accuracy": float((probs.argmax(1) == labels).double().mean()), "nll": nll,
            "ece": expected_calibration_error(probs, labels)}


def evaluate(model: nn.Module, inputs: torch.Tensor, labels, batch_size: int, device: torch.device) -> dict:
    return classification_metrics(predict(model, inputs, batch_size, device), torch.as_tensor(labels))


def fit(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, train: dict, weight_decay: float, seed: int,
        device: torch.device, val: tuple[torch.Tensor, torch.Tensor] | None = None,
        progress: Callable[[Iterable], Iterable] = lambda it: it) -> list[dict]:
    """Fine-tune `model` in place on pre-processed `inputs`; return one curve row per epoch.

    `seed` fixes the data order and every random draw in the network (dropout masks), so the same seed on the
    same device gives the same weights.
    """
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    model.to(device)
    optimizer = make_optimizer(model, train, weight_decay)
    labels = torch.as_tensor(labels)
    steps_per_epoch = math.ceil(len(inputs) / train["batch_size"])
    curve = []
    for epoch in progress(range(1, train["epochs"] + 1)):
        model.train()
        loss_sum, correct = 0.0, 0
        for index in batches(len(inputs), train["batch_size"], order):
            x, y = inputs[index].to(device, non_blocking=True), labels[index].to(device, non_blocking=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(index)
            correct += int((logits.argmax(1) == y).sum())
        row = {"epoch": epoch, "step": epoch * steps_per_epoch, "train_loss": loss_sum / len(inputs),
               "train_accuracy": correct / len(inputs)}
        if val is not None and len(val[0]):
            metrics = evaluate(model, val[0], val[1], train["eval_batch_size"], device)
            row.update({f"val_{k}": v for k, v in metrics.items()})
        if not math.isfinite(row["train_loss"]):
            raise FloatingPointError(f"training loss became {row['train_loss']} in epoch {epoch}; lower train.lr")
        curve.append(row)
        log.info("epoch %d/%d: " + ", ".join(f"{k} %.4f" for k in row if k not in ("epoch", "step")), epoch,
                 train["epochs"], *[v for k, v in row.items() if k not in ("epoch", "step")])
    return curve
