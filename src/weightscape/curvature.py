"""Loss curvature of a network's weights: the Hessian trace and the dominant Hessian eigenvalue (issue 15).

Both are properties of the weights alone, measured on a fixed labelled sample (`curvature_sample`: the same images
for every condition of a seed). H is the Hessian, with respect to the trainable parameters (requires_grad=True),
of the mean loss over all samples of the batch set (each batch's mean loss weighted by its size), with the model
in eval mode: dropout off, BatchNorm on its running statistics.

- Trace, Hutchinson's estimator: tr H = E[z^T H z] for Rademacher z (entries +-1, seeded); the mean over
  `n_probes` probes, with its standard error (sample SD of the z^T H z / sqrt(n_probes)).
- Dominant eigenvalue, power iteration: v <- Hv / |Hv| from a seeded Rademacher start, until the Rayleigh quotient
  v^T H v changes by less than `tol` (relative). It converges to the eigenvalue largest in *magnitude* and reports
  it with its sign, as PyHessian does: at a minimum that is the largest eigenvalue; where a negative eigenvalue is
  larger in magnitude, that negative value is what comes back.

Only Hessian-vector products are formed, never H: Hv = d(g . v)/dw, double backward through the graph of the
gradient g. With a single batch that graph is built once and kept for every product (as PyHessian does); with
several it is rebuilt per batch per product, so memory stays that of one batch. `measure_curvature` shares the
graph between trace and eigenvalue, and starts the power iteration from the first trace probe, whose product it
already has. Probes, dot products and norms work on one flat vector over all parameters, not per parameter.
Image batches go channels_last (`weightscape.train.to_device`), the layout oneDNN runs fastest.

Two of torch's double-backward formulas dominate the cost on the CPU, so during the forward pass they are routed
around (`_FastDoubleBackward`), computing the same function (benchmarks/curvature.py measures the whole): eval-mode
batch norm becomes x * scale + shift (torch's batch-norm double backward is
the training-mode formula, full-size reductions included); a grouped (depthwise) convolution gets a backward made
of conv_transpose2d and conv2d_weight, whose derivatives are single oneDNN calls, where torch's double backward
loops over the groups (~7,000 small convolutions per product).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode

from weightscape.diversity import class_balanced_sample
from weightscape.train import to_device

__all__ = ["Curvature", "curvature_sample", "hessian_trace", "measure_curvature", "top_eigenvalue"]

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (outputs, labels) -> mean loss of the batch


@dataclass(frozen=True)
class Curvature:
    """Hessian trace (Hutchinson mean and standard error) and dominant eigenvalue (power iteration)."""

    trace: float
    trace_se: float  # nan with a single probe
    top_eig: float
    n_probes: int
    power_iters: int  # Hessian-vector products of the power iteration (the first one shared with the trace)
    converged: bool  # False: max_iter reached before the Rayleigh quotient settled within tol

    def as_dict(self) -> dict:
        return {"hessian_trace": self.trace, "hessian_trace_se": self.trace_se, "hessian_top_eig": self.top_eig,
                "hessian_n_probes": self.n_probes, "hessian_power_iters": self.power_iters,
                "hessian_converged": self.converged}


def curvature_sample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of `per_class` images of every class, drawn with `seed`: the fixed sample on which every
    condition of a seed is measured."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    return class_balanced_sample(labels, per_class * len(np.unique(labels)), seed)


def hessian_trace(model: nn.Module, batches: Batches, *, n_probes: int = 100, seed: int = 0,
                  loss: Loss | None = None) -> tuple[float, float]:
    """(trace, standard error) of H by Hutchinson's estimator with `n_probes` Rademacher probes."""
    _check(n_probes=n_probes)
    with _hessian_operator(model, batches, loss) as (hvp, draw):
        trace, se, _ = _hutchinson(hvp, draw, n_probes, torch.Generator().manual_seed(seed))
    return trace, se


def top_eigenvalue(model: nn.Module, batches: Batches, *, tol: float = 1e-3, max_iter: int = 100, seed: int = 0,
                   loss: Loss | None = None) -> tuple[float, int, bool]:
    """(dominant eigenvalue, iterations used, converged) of H by power iteration; see the module docstring."""
    _check(tol=tol, max_iter=max_iter)
    with _hessian_operator(model, batches, loss) as (hvp, draw):
        start = draw(torch.Generator().manual_seed(seed))
        return _power_iteration(hvp, start, hvp(start), tol, max_iter)


def measure_curvature(model: nn.Module, batches: Batches, *, n_probes: int = 100, tol: float = 1e-3,
                      max_iter: int = 100, seed: int = 0, device: torch.device | str | None = None,
                      loss: Loss | None = None) -> Curvature:
    """Trace and dominant eigenvalue of H on one shared gradient graph; the numbers are those of hessian_trace and
    top_eigenvalue with the same seed. `device`: where to measure (the model is moved there, in place); default:
    where the model's parameters are. `loss` defaults to cross-entropy (mean over the batch)."""
    _check(n_probes=n_probes, tol=tol, max_iter=max_iter)
    if device is not None:
        model.to(device)
    with _hessian_operator(model, batches, loss) as (hvp, draw):
        trace, se, (probe, product) = _hutchinson(hvp, draw, n_probes, torch.Generator().manual_seed(seed))
        eig, iters, converged = _power_iteration(hvp, probe, product, tol, max_iter)
    return Curvature(trace, se, eig, n_probes, iters, converged)


def _check(**arguments) -> None:
    lowest = {"n_probes": 1, "max_iter": 1, "tol": 0}
    for name, value in arguments.items():
        if not value >= lowest[name]:  # also catches nan
            raise ValueError(f"{name} must be >= {lowest[name]}, got {value}")


@contextmanager
def _hessian_operator(model: nn.Module, batches: Batches, loss: Loss | None
                      ) -> Iterator[tuple[Callable[[torch.Tensor], torch.Tensor], Callable]]:
    """(v -> Hv on flat vectors, generator -> a Rademacher probe), the model in eval mode while it is open."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameter with requires_grad=True")
    device, dtype, size = params[0].device, params[0].dtype, sum(p.numel() for p in params)
    batches = [(to_device(x, device), y.to(device)) for x, y in batches]
    total = sum(len(y) for _, y in batches)
    if total == 0:
        raise ValueError("batches must hold at least one (inputs, labels) pair with samples")
    loss = loss or F.cross_entropy
    # every module's own flag, not model.train(flag): a submodule frozen in eval inside a training model stays so
    modes = [(module, module.training) for module in model.modules()]

    def flat_gradient(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with _FastDoubleBackward():
            value = loss(model(inputs), labels)
        if len(batches) > 1:
            value = value * (len(labels) / total)
        # materialize: a parameter the loss does not reach has a zero gradient and zero Hessian rows
        grads = torch.autograd.grad(value, params, create_graph=True, allow_unused=True, materialize_grads=True)
        return torch.cat([g.reshape(-1) for g in grads])

    def product(gradient: torch.Tensor, v: torch.Tensor, retain: bool) -> torch.Tensor:
        hv = torch.autograd.grad(gradient, params, v, retain_graph=retain, allow_unused=True, materialize_grads=True)
        return torch.cat([h.reshape(-1) for h in hv])

    def draw(generator: torch.Generator) -> torch.Tensor:
        # drawn on the CPU: the same probes whatever the device
        return (torch.randint(0, 2, (size,), generator=generator, dtype=dtype) * 2 - 1).to(device)

    def hvp_batches(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(v)
        for inputs, labels in batches:
            out += product(flat_gradient(inputs, labels), v, retain=False)
        return out

    model.eval()
    try:
        if len(batches) == 1:
            gradient = flat_gradient(*batches[0])
            yield (lambda v: product(gradient, v, retain=True)), draw
        else:
            yield hvp_batches, draw
    finally:
        for module, training in modes:
            module.training = training


def _hutchinson(hvp: Callable, draw: Callable, n_probes: int, generator: torch.Generator):
    """(mean of z^T H z, its standard error, (first probe, its product) for the power iteration to start from)."""
    quadratic, first = [], None
    for _ in range(n_probes):
        z = draw(generator)
        hz = hvp(z)
        quadratic.append(torch.dot(z, hz).item())
        first = first or (z, hz)
    se = statistics.stdev(quadratic) / math.sqrt(n_probes) if n_probes > 1 else math.nan
    return statistics.fmean(quadratic), se, first


def _power_iteration(hvp: Callable, start: torch.Tensor, h_start: torch.Tensor, tol: float, max_iter: int
                     ) -> tuple[float, int, bool]:
    scale = torch.linalg.vector_norm(start)
    v, hv = start / scale, h_start / scale  # H is linear: H(z / |z|) from H z, no new product
    eig = math.nan
    for iteration in range(1, max_iter + 1):
        if iteration > 1:
            hv = hvp(v)
        previous, eig = eig, torch.dot(v, hv).item()
        if abs(eig - previous) < tol * abs(previous):  # strict: tol=0 runs all max_iter products
            return eig, iteration, True
        norm = torch.linalg.vector_norm(hv)
        if norm == 0:  # Hv = 0: v is an eigenvector of 0, and 0 dominates only when H = 0 on v's span
            return 0.0, iteration, True
        v = hv / norm
    return eig, max_iter, False


class _FastDoubleBackward(TorchFunctionMode):
    """Same forward values; backward graphs whose own derivatives are cheap (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.batch_norm:
            return _batch_norm(*args, **kwargs)
        if func is F.conv2d:
            return _conv2d(*args, **kwargs)
        return func(*args, **kwargs)


def _batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    if training or running_mean is None or running_var is None:
        return F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    scale = torch.rsqrt(running_var + eps)
    scale = scale if weight is None else scale * weight
    shift = -running_mean * scale if bias is None else bias - running_mean * scale
    shape = (1, -1) + (1,) * (input.dim() - 2)
    return input * scale.view(shape) + shift.view(shape)


def _conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if groups == 1 or isinstance(padding, str) or input.dim() != 4:
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    out = _GroupedConv2d.apply(input, weight, _pair(stride), _pair(padding), _pair(dilation), groups)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class _GroupedConv2d(torch.autograd.Function):
    """conv2d with groups > 1 and a differentiable backward of plain convolutions (see the module docstring)."""

    @staticmethod
    def forward(input, weight, stride, padding, dilation, groups):
        return F.conv2d(input, weight, None, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.conv = inputs[2:]

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        grad_input = grad_weight = None
        if ctx.needs_input_grad[0]:
            # the input rows/columns a strided convolution never reached come back as output padding
            lost = [input.shape[d] - ((grad.shape[d] - 1) * stride[d - 2] - 2 * padding[d - 2]
                                      + dilation[d - 2] * (weight.shape[d] - 1) + 1) for d in (2, 3)]
            grad_input = F.conv_transpose2d(grad, weight, None, stride, padding, lost, groups, dilation)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.nn.grad.conv2d_weight(input, weight.shape, grad, stride, padding, dilation, groups)
        return grad_input, grad_weight, None, None, None, None
