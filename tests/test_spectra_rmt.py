"""RMT side of the spectral engine: MP fit, randomization / correlation traps, FARMS alpha, ESD plot.

The MP fit and the randomize columns are checked against WeightWatcher 0.7.7 itself on real layers (a seeded
random-init ResNet-18 and the pretrained EfficientNet-Lite0). WeightWatcher shuffles with numpy's global RNG;
seeding it and replaying the same draws with ``np.random.RandomState(seed)`` makes its randomize columns
deterministic, so they are compared value by value too.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from weightscape.spectra.farms import farms_alpha, median_xmin_alpha
from weightscape.spectra.mp import MP_COLUMNS, fit_mp, kde_density, linear_kde
from weightscape.spectra.randomize import RANDOMIZE_COLUMNS, correlation_traps, randomized_esd

# WeightWatcher's own noise: pandas deprecation in its analyze(), sqrt of a -1e-17 JS divergence
pytestmark = [pytest.mark.filterwarnings("ignore:Passing a dict to DataFrame.from_records"),
              pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")]

SEED = 1234
MP_RTOL = 1e-9        # same eigenvalues up to ~1e-14 -> same fit up to round-off (measured <= 6e-15)
SPEEDUP_MIN = 20.0

# ~10 layers per model (all layer kinds: stem, Q == 1 quarter-circle convs, depthwise M == 1, 1x1, dense)
RESNET_LAYERS = ["conv1", "layer1.0.conv1", "layer2.0.conv1", "layer2.0.downsample.0",
                 "layer3.0.downsample.0", "layer4.0.downsample.0", "fc"]
LITE0_LAYERS = ["conv_stem", "blocks.0.0.conv_dw", "blocks.0.0.conv_pw", "blocks.2.0.conv_dw",
                "blocks.2.0.conv_pwl", "blocks.3.1.conv_pw", "blocks.4.0.conv_pwl", "blocks.5.1.conv_pw",
                "conv_head", "classifier"]


# ----------------------------------------------------------------------------------------------- helpers
def ww_matrices(module) -> tuple[list[np.ndarray], float]:
    """A layer's matrices in WeightWatcher's orientation and its eigenvalue factor: Linear -> [W] (as stored),
    Conv2d -> the kh*kw slices W[:, :, i, j], transposed to N >= M, with eigenvalues halved (sqrt(1/2) on W).
    Weights go through float32 like WeightWatcher's torch -> numpy conversion."""
    W = module.weight.detach().float().cpu().numpy()
    if W.ndim == 2:
        return [W], 1.0
    mats = []
    for i in range(W.shape[2]):
        for j in range(W.shape[3]):
            S = W[:, :, i, j]
            mats.append(S.T if S.shape[0] < S.shape[1] else S)
    return mats, 0.5


def esd(mats: list[np.ndarray], scale: float) -> np.ndarray:
    """Pooled eigenvalues (float64 eigvalsh of the small Gram), times the convention factor."""
    out = []
    for A in mats:
        A = np.asarray(A, dtype=np.float64)
        G = A.T @ A if A.shape[0] >= A.shape[1] else A @ A.T
        out.append(np.clip(np.linalg.eigvalsh(G), 0.0, None))
    return np.sort(np.concatenate(out)) * scale


def gram_evals(W: np.ndarray) -> np.ndarray:
    return esd([W], 1.0)


def run_weightwatcher(model, layer_names: list[str]) -> dict:
    """WeightWatcher analyze(mp_fit=True, randomize=True) on the named layers with np.random seeded, recording
    every mp_fit call's input eigenvalues, output and time."""
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    calls = []

    class Recorder(ww.WeightWatcher):
        def mp_fit(self, evals, N, M, rf, *args, **kwargs):
            t0 = time.perf_counter()
            out = super().mp_fit(evals, N, M, rf, *args, **kwargs)
            calls.append({"evals": np.array(evals), "N": N, "M": M, "random": kwargs.get("randomize", False),
                          "out": dict(zip(["num_spikes", "sigma_mp", "mp_softrank", "bulk_min", "bulk_max",
                                           "W_scale"], out)),
                          "seconds": time.perf_counter() - t0})
            return out

    modules = dict(model.named_modules())
    ids = [i for i, (name, _) in enumerate(model.named_modules()) if name in layer_names]
    assert len(ids) == len(layer_names)
    np.random.seed(SEED)
    details = Recorder(model=model).analyze(layers=ids, mp_fit=True, randomize=True)
    names = [name for name, _ in model.named_modules()]
    details["longname"] = [names[int(i)] for i in details["layer_id"]]
    assert details["longname"].tolist() == [n for n in names if n in layer_names]
    return {"details": details, "calls": calls, "modules": modules}


@pytest.fixture(scope="module")
def resnet_ww():
    import torch
    import torchvision

    torch.manual_seed(0)
    return run_weightwatcher(torchvision.models.resnet18(weights=None).eval(), RESNET_LAYERS)


@pytest.fixture(scope="module")
def lite0_ww():
    from weightscape.models import build_model

    return run_weightwatcher(build_model("efficientnet_lite0", 1000).module.eval(), LITE0_LAYERS)


def assert_close(ours: dict, ref, columns, rtol: float, where: str):
    for col in columns:
        a, b = float(ours[col]), float(ref[col])
        assert abs(a - b) <= rtol * max(abs(b), 1e-300), f"{where}: {col} ours={a!r} WeightWatcher={b!r}"


# ------------------------------------------------------------------------- MP fit vs WeightWatcher
@pytest.mark.parametrize("model", ["resnet_ww", "lite0_ww"])
def test_fit_mp_matches_weightwatcher_on_its_own_eigenvalues(model, request):
    run = request.getfixturevalue(model)
    assert len(run["calls"]) == 2 * len(run["details"])          # one plain + one randomized fit per layer
    for call in run["calls"]:
        ours = fit_mp(call["evals"], call["N"] / call["M"], M=call["M"])
        where = f"{model} N={call['N']} M={call['M']} n={len(call['evals'])} random={call['random']}"
        assert ours["num_spikes"] == call["out"]["num_spikes"], where
        assert_close(ours, call["out"], ["sigma_mp", "mp_softrank", "bulk_max", "bulk_min", "W_scale"],
                     1e-12, where)


@pytest.mark.parametrize("model", ["resnet_ww", "lite0_ww"])
def test_fit_mp_matches_weightwatcher_columns_from_numpy_eigenvalues(model, request):
    run = request.getfixturevalue(model)
    details = run["details"]
    assert set(MP_COLUMNS) <= set(details.columns)
    spikes = []
    for _, row in details.iterrows():
        mats, scale = ww_matrices(run["modules"][row["longname"]])
        N, M = max(mats[0].shape), min(mats[0].shape)
        assert (N, M) == (row["N"], row["M"])
        ours = fit_mp(esd(mats, scale), N / M, M=M)
        assert set(ours) == set(MP_COLUMNS)
        assert ours["num_spikes"] == row["num_spikes"], row["longname"]
        assert_close(ours, row, ["sigma_mp", "bulk_max", "bulk_min", "mp_softrank", "W_scale"], MP_RTOL,
                     f"{model} {row['longname']}")
        spikes.append(ours["num_spikes"])
    if model == "lite0_ww":                    # a trained network: real spikes, not just zeros agreeing
        assert max(spikes) >= 10


def test_fit_mp_is_much_faster_than_weightwatcher(resnet_ww, lite0_ww):
    calls = resnet_ww["calls"] + lite0_ww["calls"]
    ww_seconds = sum(c["seconds"] for c in calls)
    ours = []
    for c in calls:
        best = np.inf
        for _ in range(2):
            t0 = time.perf_counter()
            fit_mp(c["evals"], c["N"] / c["M"], M=c["M"])
            best = min(best, time.perf_counter() - t0)
        ours.append(best)
    speedup = ww_seconds / sum(ours)
    assert speedup >= SPEEDUP_MIN, f"only {speedup:.1f}x faster than WeightWatcher's mp_fit"


def test_kde_is_weightwatchers_kernel_density():
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.gamma(2.0, 0.5, 400), [9.0, 9.05]])
    grid = np.linspace(0, x.max() + 0.5, 1000)
    ref = np.exp(KernelDensity(kernel="linear", bandwidth=0.1).fit(x[:, None]).score_samples(grid[:, None]))
    np.testing.assert_allclose(linear_kde(x, grid), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(linear_kde(x, grid, max_pairs=50), ref, rtol=0, atol=1e-12)   # chunked path
    assert np.array_equal(kde_density(x, grid), ref)
    assert abs(np.trapezoid(ref, grid) - 1.0) < 1e-3


# ------------------------------------------------------------------------------------ known answers
@pytest.mark.parametrize("N,M,s", [(1000, 250, 0.02), (800, 400, 1.0), (300, 300, 0.1), (2000, 100, 0.05)])
def test_fit_mp_recovers_iid_gaussian_and_planted_spikes(N, M, s):
    rng = np.random.default_rng(N + M)
    W = rng.normal(0.0, s, (N, M))
    Q = N / M
    fit = fit_mp(gram_evals(W), Q, M=M)
    # WeightWatcher's sigma_mp is in rescaled (mean-eigenvalue 1) units: 1 for i.i.d. entries of any scale;
    # sigma_mp / W_scale is the original-units value s * sqrt(N) (eigenvalues of W^T W, no 1/N)
    assert fit["sigma_mp"] == pytest.approx(1.0, rel=0.03)
    assert fit["sigma_mp"] / fit["W_scale"] == pytest.approx(s * np.sqrt(N), rel=0.03)
    assert fit["bulk_max"] == pytest.approx(N * s ** 2 * (1 + 1 / np.sqrt(Q)) ** 2, rel=0.05)
    if Q > 1:
        assert fit["bulk_min"] == pytest.approx(N * s ** 2 * (1 - 1 / np.sqrt(Q)) ** 2, rel=0.15)
    assert fit["num_spikes"] == 0
    assert 0.9 < fit["mp_softrank"] < 1.1
    # rank-3 signal well above the edge -> exactly 3 spikes
    U, V = rng.standard_normal((N, 3)), rng.standard_normal((M, 3))
    signal = (U * [3.0, 4.0, 5.0]) @ V.T * (3 * s / np.sqrt(M))
    spiked = fit_mp(gram_evals(W + signal), Q, M=M)
    assert spiked["num_spikes"] == 3
    assert spiked["mp_softrank"] < 0.2


def test_fit_mp_failure_gives_minus_one_like_weightwatcher():
    assert all(v == -1 for v in fit_mp(np.zeros(10), 2.0).values())
    assert set(fit_mp(np.zeros(10), 2.0)) == set(MP_COLUMNS)


# ---------------------------------------------------------------------------------------- randomize
@pytest.mark.parametrize("model", ["resnet_ww", "lite0_ww"])
def test_randomize_columns_match_weightwatcher_with_the_same_draws(model, request):
    run = request.getfixturevalue(model)
    details = run["details"]
    assert set(RANDOMIZE_COLUMNS) <= set(details.columns)
    rs = np.random.RandomState(SEED)          # replays np.random.seed(SEED) + np.random.shuffle
    for _, row in details.iterrows():         # WeightWatcher's order: layer by layer, replicas then 1 replica
        mats, scale = ww_matrices(run["modules"][row["longname"]])
        N, M = max(mats[0].shape), min(mats[0].shape)
        evals = esd(mats, scale)
        rand = randomized_esd(mats, rs, scale)
        single = randomized_esd(mats, rs, scale, replicas=1)
        ours = correlation_traps(evals, rand, N / M, M=M, rand_evals_single=single)
        assert set(ours) == set(RANDOMIZE_COLUMNS)
        where = f"{model} {row['longname']}"
        assert ours["rand_num_spikes"] == row["rand_num_spikes"] == ours["num_traps"] == row["num_traps"], where
        assert_close(ours, row, ["max_rand_eval", "ww_softrank", "rand_sigma_mp", "rand_mp_softrank",
                                 "rand_W_scale", "rand_bulk_max", "rand_bulk_min"], MP_RTOL, where)
        # differences of nearly equal numbers (M == 1 layers: shuffling a vector keeps its norm): absolute
        assert abs(ours["ww_maxdist"] - row["ww_maxdist"]) <= 1e-9 * float(np.max(evals)), where
        # WeightWatcher's JS distance is nan when round-off makes the divergence negative (identical ESDs)
        assert abs(ours["rand_distance"] - np.nan_to_num(row["rand_distance"], nan=0.0)) <= 1e-6, where


def test_randomize_destroys_a_planted_spike_but_keeps_the_bulk():
    rng = np.random.default_rng(7)
    N, M = 600, 200
    W = rng.normal(0, 1.0, (N, M))
    u, v = rng.standard_normal(N), rng.standard_normal(M)
    spiked = W + 4.0 * np.outer(u, v) / np.sqrt(M)
    evals = gram_evals(spiked)
    assert fit_mp(evals, N / M, M=M)["num_spikes"] == 1
    rand = randomized_esd([spiked], rng)
    assert rand.dtype == np.float64 and len(rand) == M
    assert np.sum(rand) == pytest.approx(np.sum(evals), rel=1e-9)          # shuffling keeps the Frobenius norm
    traps = correlation_traps(evals, rand, N / M, M=M)
    assert traps["rand_num_spikes"] == traps["num_traps"] == 0
    assert traps["ww_softrank"] < 0.5                                       # the spike is far above the bulk
    # i.i.d. matrix: the randomized ESD has the same MP edge
    plain = fit_mp(gram_evals(W), N / M, M=M)
    traps_iid = correlation_traps(gram_evals(W), randomized_esd([W], rng), N / M, M=M)
    assert traps_iid["rand_bulk_max"] == pytest.approx(plain["bulk_max"], rel=0.03)
    assert traps_iid["rand_num_spikes"] == 0
    assert traps_iid["ww_softrank"] == pytest.approx(1.0, abs=0.05)


def test_randomized_esd_shuffles_each_matrix_separately_and_scales():
    rng = np.random.default_rng(3)
    small, big = rng.normal(0, 1, (64, 32)), rng.normal(0, 10, (64, 32))
    rand = randomized_esd([small, big], np.random.default_rng(0), scale=0.5)
    assert len(rand) == 5 * 64                       # < 100 eigenvalues in all -> WeightWatcher's 5 replicas
    assert np.all(np.diff(rand) >= 0)
    # no element moved between the two matrices: exactly half of the eigenvalues are the big matrix's
    threshold = 0.5 * (gram_evals(small).max() + gram_evals(big).min()) * 0.5
    assert np.count_nonzero(rand > threshold) == 5 * 32
    assert np.sum(rand) == pytest.approx(5 * 0.5 * (np.sum(small ** 2) + np.sum(big ** 2)), rel=1e-9)
    one = randomized_esd([small, big], np.random.default_rng(0), scale=0.5, replicas=1)
    assert len(one) == 64
    # RandomState replays the global np.random.shuffle
    np.random.seed(5)
    flat = big.flatten()
    np.random.shuffle(flat)
    expected = 0.5 * gram_evals(flat.reshape(big.shape))
    np.testing.assert_allclose(randomized_esd([big], np.random.RandomState(5), 0.5, replicas=1), expected,
                               rtol=1e-12)


# -------------------------------------------------------------------------------------------- FARMS
def test_farms_alpha_removes_the_aspect_ratio_bias():
    rng = np.random.default_rng(11)
    shapes = [(200, 400), (200, 2000), (1000, 250), (400, 400)]
    farms, plain = [], []
    for shape in shapes:
        W = rng.standard_normal(shape)
        f = farms_alpha([W])
        assert f["farms_windows"] == 100 and f["farms_num_evals"] == 100 * 100
        farms.append(f["alpha_farms"])
        plain.append(median_xmin_alpha(gram_evals(W))[0])
    assert max(farms) - min(farms) < 0.1
    assert max(plain) - min(plain) > 1.5
    assert max(farms) - min(farms) < 0.1 * (max(plain) - min(plain))


def test_farms_windows_small_matrices_conv_slices_and_scale():
    rng = np.random.default_rng(12)
    slices = [rng.standard_normal((64, 48)) for _ in range(9)]      # smaller than a window: used whole
    f = farms_alpha(slices)
    assert f["farms_windows"] == 9 and f["farms_num_evals"] == 9 * 48
    half = farms_alpha(slices, scale=0.5, return_eigenvalues=True)
    assert half["alpha_farms"] == pytest.approx(f["alpha_farms"], rel=1e-12)
    assert half["farms_xmin"] == pytest.approx(0.5 * f["farms_xmin"], rel=1e-12)
    assert len(half["farms_evals"]) == half["farms_num_evals"]
    # 900 x 150 is oriented to 150 x 900: 51 possible row starts, 701 column starts -> a 10 x 10 grid
    assert farms_alpha([rng.standard_normal((900, 150))])["farms_windows"] == 100
    # 105 rows: only 6 distinct row starts
    assert farms_alpha([rng.standard_normal((105, 300))])["farms_windows"] == 6 * 10
    # definition: alpha = 1 + n / sum(ln(lambda / xmin)) above the median
    ev = np.array([1.0, 2.0, 3.0, 4.0, 8.0])
    alpha, xmin, n = median_xmin_alpha(ev)
    assert (xmin, n) == (3.0, 3)
    assert alpha == pytest.approx(1 + 3 / (np.log(4 / 3) + np.log(8 / 3)))
