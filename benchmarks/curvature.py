"""Loss-curvature cost: weightscape.curvature.measure_curvature vs PyHessian 0.1 (the authors' tool), side by side.

Same model (the pretrained EfficientNet-Lite0 + a 10-class head), same batch of real Fashion-MNIST images (one
batch of --images), same loss (cross-entropy), same number of Hutchinson probes and power iterations, same thread
count. Both are made to run every iteration asked for: PyHessian with tol=-inf, which its stopping tests
(|change| / |value| < tol) never meet; weightscape with tol=0, as its test is strict. Timed per tool: from the
model to both numbers (PyHessian: hessian(...) building the gradient graph, then eigenvalues() and trace();
weightscape: measure_curvature). weightscape starts its power iteration from the first trace probe and reuses
that product, so it computes probes + iters - 1 Hessian-vector products to PyHessian's probes + iters. Runs
alternate (weightscape, pyhessian, ...) so that machine noise hits both; the median of each is reported. Goal:
pyhessian / weightscape >= 1.0. PyHessian gets the model and batch as built (NCHW); weightscape feeds the batch
channels_last (--pyhessian-nhwc adds a PyHessian run given that layout too).

    python benchmarks/curvature.py [--images 64] [--probes 10] [--iters 10] [--repeats 3] [--threads 1]
                                   [--image-size 48] [--pyhessian-nhwc]
"""

from __future__ import annotations

import copy
import statistics
import warnings

import numpy as np
import torch
from torch import nn

from _common import alternating, default_model_and_data, options
from weightscape.runtime import pin_threads


def run_pyhessian(model, inputs, labels, probes, iters, seed):
    """PyHessian 0.1 as its README uses it: one hessian object (one gradient graph) for eigenvalue and trace."""
    from pyhessian import hessian

    torch.manual_seed(seed)  # it draws its vectors from the global generator
    warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")  # its own, known
    computer = hessian(model, nn.CrossEntropyLoss(), data=(inputs, labels), cuda=False)
    (eig,), _ = computer.eigenvalues(maxIter=iters, tol=float("-inf"), top_n=1)
    quadratic = computer.trace(maxIter=probes, tol=float("-inf"))
    model.zero_grad(set_to_none=True)  # its backward(create_graph=True) leaves graph-holding .grad behind
    assert len(quadratic) == probes
    return float(np.mean(quadratic)), float(np.std(quadratic, ddof=1) / np.sqrt(probes)), eig


def run_weightscape(model, inputs, labels, probes, iters, seed):
    from weightscape.curvature import measure_curvature

    result = measure_curvature(model, [(inputs, labels)], n_probes=probes, tol=0.0, max_iter=iters, seed=seed)
    assert result.power_iters == iters and not result.converged
    return result.trace, result.trace_se, result.top_eig


def main() -> None:
    args = options(__doc__, images=64, probes=10, iters=10, repeats=3, threads=1, image_size=48, pyhessian_nhwc=False)
    pin_threads(args.threads)

    from weightscape.inputs import to_model_inputs

    built, images, labels, spec = default_model_and_data(args.images, args.image_size)
    inputs, labels = to_model_inputs(images, spec), torch.as_tensor(labels)
    runners = {
        "weightscape": lambda m: run_weightscape(m, inputs, labels, args.probes, args.iters, 0),
        "pyhessian": lambda m: run_pyhessian(m, inputs, labels, args.probes, args.iters, 0),
    }
    if args.pyhessian_nhwc:
        nhwc = inputs.contiguous(memory_format=torch.channels_last)
        runners["pyhessian-nhwc"] = lambda m: run_pyhessian(m, nhwc, labels, args.probes, args.iters, 0)
    runners["weightscape"](copy.deepcopy(built.module))  # warm-up (allocator, kernels) outside the timing
    seconds, results = alternating(runners, args.repeats, fresh=lambda: copy.deepcopy(built.module))
    ours = statistics.median(seconds["weightscape"])
    print(f"model efficientnet_lite0 @ {args.image_size}px, one batch of {args.images} images, {args.probes} probes + "
          f"{args.iters} power iterations, {args.threads} thread(s), {args.repeats} alternating repeats (median)")
    print(f"{'tool':<16}{'seconds':>9}{'HVPs':>6}{'trace +- se':>20}{'top eig':>10}   runs")
    for name, values in seconds.items():
        products = args.probes + args.iters - (name == "weightscape")
        trace, se, eig = results[name]
        print(f"{name:<16}{statistics.median(values):>9.2f}{products:>6}{f'{trace:.1f} +- {se:.1f}':>20}{eig:>10.3f}   "
              + ", ".join(f"{v:.2f}" for v in values))
    for name in [name for name in seconds if name != "weightscape"]:
        print(f"ratio {name}_seconds / weightscape_seconds = {statistics.median(seconds[name]) / ours:.3f}"
              + ("   (goal >= 1.0)" if name == "pyhessian" else ""))


if __name__ == "__main__":
    main()
