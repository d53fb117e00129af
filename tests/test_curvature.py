"""weightscape.curvature against a dense Hessian (tiny models, float64) and against PyHessian 0.1 (the authors'
tool), plus eval-mode handling, restoration, determinism and argument checks. One thread, ~10 s in all."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian

from weightscape.curvature import Curvature, curvature_sample, hessian_trace, measure_curvature, top_eigenvalue
from weightscape.data.sources import SOURCES
from weightscape.inputs import InputSpec, to_model_inputs

# Both come from PyHessian 0.1, the reference tool, not from weightscape: its import runs torch.jit.script, and
# its Hessian-vector products call backward(create_graph=True) (the tests clear .grad afterwards).
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning"),
              pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning")]


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 5)).double()  # 229 parameters


def conv_net(classes: int = 3, width: int = 4) -> nn.Module:
    """BatchNorm, Dropout, a depthwise stride-2 convolution on an even input (its transpose needs output padding)
    and a grouped 1x1 convolution with a bias: every path weightscape.curvature treats specially."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU6(),
        nn.Conv2d(width, width, 3, stride=2, padding=1, groups=width), nn.BatchNorm2d(width), nn.Hardswish(),
        nn.Dropout(0.5), nn.Conv2d(width, width, 1, groups=2), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))


def with_running_stats(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Non-trivial BatchNorm running statistics (fresh ones are 0 and 1); the model is left in train mode."""
    model.train()
    with torch.no_grad():
        for shift in range(3):
            model(x * (1 + shift) + shift)
    return model


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference: the full Hessian, over the trainable parameters, of the eval-mode mean cross-entropy."""
    model = copy.deepcopy(model).eval()
    named = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    flat = torch.cat([p.reshape(-1) for p in named.values()])

    def loss(w):
        params = {n: c.view_as(p) for (n, p), c in zip(named.items(), w.split([p.numel() for p in named.values()]))}
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    return hessian(loss)(flat)


def dominant(h: torch.Tensor) -> float:
    eigenvalues = torch.linalg.eigvalsh(h)
    return eigenvalues[eigenvalues.abs().argmax()].item()


@pytest.fixture(scope="module")
def mlp_case():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 8, generator=g, dtype=torch.float64), torch.randint(0, 5, (24,), generator=g)
    model = mlp()
    return model, x, y, dense_hessian(model, x, y)


@pytest.fixture(scope="module")
def conv_case():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(16, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g)
    model = with_running_stats(conv_net().double(), x)
    return model, x, y, dense_hessian(model, x, y)


@pytest.mark.parametrize("case", ["mlp_case", "conv_case"])
def test_top_eigenvalue_is_the_dense_dominant_eigenvalue(case, request):
    model, x, y, h = request.getfixturevalue(case)
    eig, iterations, converged = top_eigenvalue(model, [(x, y)], tol=1e-12, max_iter=5000, seed=0)
    assert converged and iterations < 5000
    assert eig == pytest.approx(dominant(h), rel=1e-4)


@pytest.mark.parametrize("case", ["mlp_case", "conv_case"])
def test_hutchinson_trace_is_unbiased_and_its_error_shrinks_as_one_over_sqrt_n(case, request):
    model, x, y, h = request.getfixturevalue(case)
    trace, se = hessian_trace(model, [(x, y)], n_probes=1024, seed=0)
    assert abs(trace - torch.trace(h).item()) < 3 * se
    # the exact SD of z^T H z for Rademacher z, sqrt(2 * sum_{i != j} H_ij^2), over sqrt(n)
    sd = math.sqrt(2 * ((h ** 2).sum() - (h.diagonal() ** 2).sum()).item())
    se_256 = hessian_trace(model, [(x, y)], n_probes=256, seed=3)[1]  # other probes: independent of the 1024
    # a sample SD from n near-normal values is off by ~1/sqrt(2n) relative (4.4 % at 256, 2.2 % at 1024): 3 of those
    assert se * math.sqrt(1024) == pytest.approx(sd, rel=0.066)
    assert se_256 * math.sqrt(256) == pytest.approx(sd, rel=0.13)
    # 4x the probes, half the error; the ratio's sampling SD is 0.5 * sqrt(4.4 %^2 + 2.2 %^2) = 0.025: 3 of those
    assert se / se_256 == pytest.approx(0.5, abs=0.075)


class Quadratic(nn.Module):
    """Outputs its weights whatever the input; with `half_weighted_square` as the loss, H = diag(labels row)."""

    def __init__(self, size: int):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, size, dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(len(x), -1)


def half_weighted_square(outputs, labels):
    return (labels * outputs ** 2).sum(1).mean() / 2


def test_diagonal_hessian_rademacher_trace_is_exact_and_the_dominant_eigenvalue_keeps_its_sign():
    c = torch.tensor([1.0, -3.0, 2.0, 0.5], dtype=torch.float64)
    batches = [(torch.zeros(4, 1), c.expand(4, -1))]
    # z_i^2 = 1 for every Rademacher probe: each z^T H z is the trace itself (a Gaussian probe's would not be)
    assert hessian_trace(Quadratic(4), batches, n_probes=5, loss=half_weighted_square) == (0.5, 0.0)
    # the eigenvalue largest in magnitude is -3, not the algebraic largest 2
    eig, _, converged = top_eigenvalue(Quadratic(4), batches, tol=1e-12, max_iter=500, loss=half_weighted_square)
    assert converged and eig == pytest.approx(-3.0, rel=1e-6)

def test_measurement_is_of_the_eval_mode_model_and_restores_it(conv_case):
    model, x, y, h = conv_case
    model = copy.deepcopy(model)
    model[4].eval()  # a submodule frozen in eval inside a training model must stay so
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = measure_curvature(model, [(x, y)], n_probes=8, tol=1e-12, max_iter=5000, seed=0)
    # dropout active or batch statistics would change H (and make it random): the dense eval-mode value comes out
    assert result.top_eig == pytest.approx(dominant(h), rel=1e-4)
    assert [m.training for m in model.modules()] == [m is not model[4] for m in model.modules()]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm running stats
    assert all(p.grad is None for p in model.parameters())


def test_frozen_parameters_are_left_out(mlp_case):
    model, x, y, _ = mlp_case
    model = copy.deepcopy(model)
    model[0].weight.requires_grad_(False)
    h = dense_hessian(model, x, y)
    assert h.shape == (229 - 128, 229 - 128)
    eig, _, converged = top_eigenvalue(model, [(x, y)], tol=1e-12, max_iter=5000)
    assert converged and eig == pytest.approx(dominant(h), rel=1e-4)
    assert eig != pytest.approx(dominant(mlp_case[3]), rel=1e-3)  # the frozen layer would change the answer
    assert not model[0].weight.requires_grad


def test_several_batches_give_the_size_weighted_mean_loss_hessian(mlp_case):
    model, x, y, _ = mlp_case
    whole = measure_curvature(model, [(x, y)], n_probes=16, tol=1e-10, max_iter=2000, seed=5)
    split = measure_curvature(model, [(x[:5], y[:5]), (x[5:], y[5:])], n_probes=16, tol=1e-10, max_iter=2000, seed=5)
    assert split.trace == pytest.approx(whole.trace, rel=1e-10)
    assert split.top_eig == pytest.approx(whole.top_eig, rel=1e-8)
    assert split.converged and whole.converged


def test_seeded_and_byte_identical_and_shared_work_changes_nothing(conv_case):
    model, x, y, _ = conv_case
    model = copy.deepcopy(model).float()
    batches = [(x.float(), y)]
    first, second = (measure_curvature(model, batches, n_probes=6, tol=1e-4, max_iter=50, seed=7) for _ in range(2))
    assert first == second  # frozen dataclass: every float equal bit for bit (none is nan with 6 probes)
    assert first.n_probes == 6 and 1 < first.power_iters <= 50
    # the power iteration starts from the first trace probe and reuses its product: same numbers as alone
    assert hessian_trace(model, batches, n_probes=6, seed=7) == (first.trace, first.trace_se)
    assert top_eigenvalue(model, batches, tol=1e-4, max_iter=50, seed=7) == (first.top_eig, first.power_iters,
                                                                              first.converged)
    other = measure_curvature(model, batches, n_probes=6, tol=1e-4, max_iter=50, seed=8)
    assert other.trace != first.trace


def test_max_iter_bounds_the_power_iteration_and_tol_zero_never_stops(mlp_case):
    model, x, y, _ = mlp_case
    eig, iterations, converged = top_eigenvalue(model, [(x, y)], tol=0.0, max_iter=7)
    assert (iterations, converged) == (7, False) and math.isfinite(eig)
    assert math.isnan(measure_curvature(model, [(x, y)], n_probes=1, max_iter=3).trace_se)


def test_as_dict_keys():
    row = Curvature(1.5, 0.1, 0.7, 10, 12, True).as_dict()
    assert row == {"hessian_trace": 1.5, "hessian_trace_se": 0.1, "hessian_top_eig": 0.7, "hessian_n_probes": 10,
                   "hessian_power_iters": 12, "hessian_converged": True}


@pytest.mark.parametrize("kwargs, name", [({"n_probes": 0}, "n_probes"), ({"max_iter": 0}, "max_iter"),
                                          ({"tol": -1e-3}, "tol"), ({"tol": float("nan")}, "tol")])
def test_bad_arguments_are_one_line_errors_naming_them(mlp_case, kwargs, name):
    model, x, y, _ = mlp_case
    with pytest.raises(ValueError, match=rf"^{name} must be >= ") as error:
        measure_curvature(model, [(x, y)], **kwargs)
    assert "\n" not in str(error.value)


def test_empty_batches_are_an_error(mlp_case):
    model, x, y, _ = mlp_case
    for batches in ([], [(x[:0], y[:0])]):
        with pytest.raises(ValueError, match="^batches must hold"):
            hessian_trace(model, batches, n_probes=2)
    assert model.training  # nothing was touched


def test_curvature_sample_is_class_balanced_and_seeded():
    labels = np.repeat(np.arange(4), [10, 7, 9, 12])
    index = curvature_sample(labels, per_class=5, seed=0)
    assert np.array_equal(np.bincount(labels[index]), [5, 5, 5, 5])
    assert np.array_equal(index, np.sort(index)) and len(np.unique(index)) == 20
    assert np.array_equal(index, curvature_sample(labels, per_class=5, seed=0))
    assert not np.array_equal(index, curvature_sample(labels, per_class=5, seed=1))
    with pytest.raises(ValueError, match="per_class"):
        curvature_sample(labels, per_class=0, seed=0)
    with pytest.raises(ValueError, match="class 1 has 7 images"):
        curvature_sample(labels, per_class=8, seed=0)


@pytest.fixture(scope="module")
def fashion_batch(fashion_root):
    raw = SOURCES["fashion_mnist"].load({"root": str(fashion_root)})
    index = curvature_sample(raw.train_labels, per_class=6, seed=0)
    x = to_model_inputs(raw.train_images[index], InputSpec(16, (0.5,) * 3, (0.5,) * 3))
    return x, torch.as_tensor(raw.train_labels[index])


def test_agrees_with_pyhessian(fashion_batch):
    """PyHessian 0.1 runs unchanged under torch 2.14 for eigenvalues() and trace() (only density() calls the
    removed torch.eig). It calls model.eval() itself; its trace() stops when the running mean changes by less than
    tol relative, so tol=-inf forces exactly maxIter probes; it returns the list of z^T H z."""
    from pyhessian import hessian as pyhessian

    x, y = fashion_batch
    model = with_running_stats(conv_net(classes=10, width=8), x)
    ours = measure_curvature(model, [(x, y)], n_probes=300, tol=1e-7, max_iter=2000, seed=0)
    torch.manual_seed(0)  # PyHessian draws its vectors from the global generator
    theirs = pyhessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    (eig,), _ = theirs.eigenvalues(maxIter=2000, tol=1e-7, top_n=1)
    quadratic = theirs.trace(maxIter=300, tol=float("-inf"))
    model.zero_grad(set_to_none=True)  # its backward(create_graph=True) left graph-holding .grad behind
    assert ours.converged and eig == pytest.approx(ours.top_eig, rel=0.01)
    assert len(quadratic) == 300
    se = np.std(quadratic, ddof=1) / math.sqrt(len(quadratic))
    # independent estimates of the same trace: their difference has SD sqrt(se_a^2 + se_b^2); 3 of those
    # (a false alarm for 0.3 % of seeds, and the seeds are fixed)
    assert abs(np.mean(quadratic) - ours.trace) < 3 * math.hypot(se, ours.trace_se)
    assert se == pytest.approx(ours.trace_se, rel=0.25)  # the same spread of z^T H z, estimated twice
