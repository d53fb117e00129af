"""The spectral engine on its own: ESDs, conventions, the power-law fit, metrics, layer discovery, bad input.

Agreement with WeightWatcher itself is in test_spectra_vs_weightwatcher.py; here every expectation is computed
independently (numpy eigen/SVD, a literal re-implementation of WeightWatcher's fit loop, known Pareto exponents).
"""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from weightscape.spectra import COLUMNS, analyze, discover_layers, fit_powerlaw, load_eigenvalues, save_eigenvalues
from weightscape.spectra.esd import gram_eigenvalues
from weightscape.spectra.powerlaw import EVALS_THRESH


def svd_evals(w: np.ndarray) -> np.ndarray:
    """Squared singular values, ascending: the reference for every ESD."""
    return np.sort(np.linalg.svd(np.asarray(w, dtype=np.float64), compute_uv=False) ** 2)


class Small(nn.Module):
    """One of each supported layer type, plus things that must be skipped or ignored."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 10, 3)             # ww: 9 slices 10 x 6 -> 54 evals
        self.conv1d = nn.Conv1d(8, 12, 5)           # ww: 5 slices 12 x 8 -> 40 evals
        self.emb = nn.Embedding(50, 12)
        self.norm = nn.LayerNorm(12)                # never a row
        self.attn = nn.MultiheadAttention(16, 2)    # q, k, v split; out_proj a dense row
        self.fc = nn.Linear(16, 30)
        self.tiny = nn.Linear(4, 3)                 # 3 evals < min_evals -> skipped row


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return Small()


@pytest.fixture(scope="module")
def small_table(small):
    return analyze(small, return_eigenvalues=True)


# --------------------------------------------------------------------------- ESDs and conventions


def test_dense_embedding_and_attention_esds_are_squared_singular_values(small, small_table):
    table, evals = small_table
    assert np.allclose(evals["fc"], svd_evals(small.fc.weight.detach()), rtol=1e-10)
    assert np.allclose(evals["emb"], svd_evals(small.emb.weight.detach()), rtol=1e-10)
    q, k, v = small.attn.in_proj_weight.detach().chunk(3)
    for part, w in zip("qkv", (q, k, v)):
        assert np.allclose(evals[f"attn.{part}"], svd_evals(w), rtol=1e-9)
    rows = table.set_index("longname")
    assert list(rows.loc[["attn.q", "attn.k", "attn.v"], "layer_type"]) == ["attention_q", "attention_k",
                                                                         "attention_v"]
    assert set(rows.loc[["attn.q", "attn.k", "attn.v"], "name"]) == {"q", "k", "v"}
    assert rows.loc["attn.out_proj", "layer_type"] == "dense"
    layer_ids = dict(zip((n for n, _ in small.named_modules()), range(100)))
    assert rows.loc["attn.q", "layer_id"] == layer_ids["attn"] and rows.loc["fc", "layer_id"] == layer_ids["fc"]
    assert "norm" not in set(table["longname"])


def test_conv_conventions(small):
    w = small.conv.weight.detach().double().numpy()                       # (10, 6, 3, 3)
    slices = [w[:, :, i, j] for i in range(3) for j in range(3)]
    ww_table, ww = analyze(small, return_eigenvalues=True)
    unf_table, unf = analyze(small, convention="unfolded", return_eigenvalues=True)
    # WeightWatcher: pooled slice eigenvalues, each slice scaled by sqrt(1/2) -> halved
    assert np.allclose(ww["conv"], np.sort(np.concatenate([svd_evals(s) for s in slices])) * 0.5, rtol=1e-10)
    assert np.allclose(unf["conv"], svd_evals(w.reshape(10, -1)), rtol=1e-10)
    row, urow = ww_table.set_index("longname").loc["conv"], unf_table.set_index("longname").loc["conv"]
    assert (row.N, row.M, row.rf, row.num_evals, row.convention) == (10, 6, 9, 54, "ww")
    assert (urow.N, urow.M, urow.rf, urow.num_evals, urow.convention) == (54, 10, 9, 10, "unfolded")
    # Conv1d: the 1-D case of the same rule
    w1 = small.conv1d.weight.detach().double().numpy()
    assert np.allclose(ww["conv1d"], np.sort(np.concatenate([svd_evals(w1[:, :, i]) for i in range(5)])) * 0.5)
    # dense layers do not depend on the convention
    assert np.array_equal(ww["fc"], unf["fc"])


def test_gram_side_and_svd_fallback_for_singular_matrices():
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((3, 7, 20))
    assert np.allclose(gram_eigenvalues(wide), np.stack([svd_evals(m) for m in wide]), rtol=1e-10)
    assert np.allclose(gram_eigenvalues(wide.transpose(0, 2, 1)), gram_eigenvalues(wide), rtol=1e-10)
    low_rank = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 12))    # rank 3: Gram round-off would
    evals = gram_eigenvalues(low_rank[None])[0]                               # swamp the 9 zero eigenvalues
    assert np.allclose(evals, svd_evals(low_rank), rtol=1e-9, atol=1e-25)
    model = nn.Linear(12, 30, bias=False, dtype=torch.float64)   # float32 rounding would restore full rank
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(low_rank))
    row = analyze(model).iloc[0]
    assert row.matrix_rank == np.linalg.matrix_rank(low_rank) == 3 and row.rank_loss == 9


def test_eigenvalue_archive_round_trip_is_atomic(tmp_path, small_table):
    _, evals = small_table
    path = tmp_path / "sub" / "evals.npz"
    save_eigenvalues(path, evals)
    save_eigenvalues(path, evals)                                            # overwrite in place
    loaded = load_eigenvalues(path)
    assert loaded.keys() == evals.keys()
    assert all(np.array_equal(loaded[k], evals[k]) for k in evals)
    assert os.listdir(path.parent) == ["evals.npz"]                          # no temp files left behind


# --------------------------------------------------------------------------- the power-law fit


def reference_fit(evals: np.ndarray):
    """WeightWatcher 0.7.7's WWFit, as a literal loop (standard branch, n >= 20)."""
    data = np.sort(evals[evals > EVALS_THRESH])
    N, logs = len(data), np.log(data)
    alphas, Ds = np.zeros(N - 1), np.ones(N - 1)
    for i in range(N - 1):
        n = float(N - i)
        alphas[i] = 1 + n / (np.sum(logs[i:]) - n * logs[i])
        if alphas[i] > 1:
            Ds[i] = np.max(np.abs(1 - (data[i:] / data[i]) ** (-alphas[i] + 1) - np.arange(n) / n))
    i = int(np.argmin(Ds))
    return alphas[i], data[i], Ds[i], (alphas[i] - 1) / np.sqrt(N - i)


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_fit_equals_the_literal_loop(seed):
    rng = np.random.default_rng(seed)
    if seed % 2:
        a = rng.standard_normal((200, 200 + 100 * seed))
        evals = np.linalg.eigvalsh(a @ a.T)                  # Marchenko-Pastur bulk
    else:
        evals = rng.pareto(1 + seed, 800) + 0.5               # heavy tail
    fit = fit_powerlaw(evals)
    alpha, xmin, D, sigma = reference_fit(evals)
    assert fit.status == "success"
    assert fit.alpha == pytest.approx(alpha, rel=1e-10) and fit.xmin == xmin
    assert fit.D == pytest.approx(D, rel=1e-10) and fit.sigma == pytest.approx(sigma, rel=1e-10)
    assert fit.xmax == evals.max() and fit.num_pl_spikes == np.count_nonzero(evals >= xmin)


@pytest.mark.parametrize("alpha", [2.5, 4.0, 6.0])
def test_fit_recovers_pareto_exponents_including_above_3(alpha):
    rng = np.random.default_rng(1)
    samples = (1 - rng.random(10000)) ** (-1 / (alpha - 1))     # density ~ x^-alpha on [1, inf)
    fit = fit_powerlaw(samples)
    assert fit.alpha == pytest.approx(alpha, rel=0.03)          # the `powerlaw` package would clip at 3


def test_min_tail_removes_the_spurious_tiny_tail_fit():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((256, 512))
    evals = np.linalg.eigvalsh(a @ a.T)
    default, robust = fit_powerlaw(evals), fit_powerlaw(evals, min_tail=50)
    assert default.num_pl_spikes < 10 and default.alpha > 15               # WeightWatcher's answer
    assert robust.num_pl_spikes >= 50 and 3 < robust.alpha < 6
    assert fit_powerlaw(evals[-40:], min_tail=50).status == "failed"


def test_small_and_failed_fits():
    rng = np.random.default_rng(0)
    small = fit_powerlaw(rng.pareto(2.0, 15) + 1)                          # WeightWatcher's small-N branch
    assert small.status == "success" and small.alpha > 1 and small.num_pl_spikes >= 8
    for bad in (np.zeros(10), np.array([1e-7, 2.0])):
        fit = fit_powerlaw(bad)
        assert (fit.status, fit.alpha, fit.xmin, fit.D, fit.num_pl_spikes) == ("failed", -1, -1, -1, -1)
        assert np.isnan(fit.xmax)


# --------------------------------------------------------------------------- the table


def test_table_columns_metrics_and_skipped_rows(small_table):
    table, evals = small_table
    assert list(table.columns[:len(COLUMNS)]) == COLUMNS
    assert table["layer_id"].dtype == np.int64 and table["alpha"].dtype == np.float64
    row = table.set_index("longname").loc["fc"]
    lam = evals["fc"]
    assert row.status == "success" and row.num_evals == len(lam) == 16 and row.Q == 30 / 16
    assert row.log_norm == pytest.approx(np.log10(lam.sum()), rel=1e-12)
    assert row.log_spectral_norm == pytest.approx(np.log10(lam.max()), rel=1e-12)
    assert row.stable_rank == pytest.approx(lam.sum() / lam.max(), rel=1e-12)
    assert row.alpha_weighted == pytest.approx(row.alpha * np.log10(lam.max()), rel=1e-12)
    assert row.log_alpha_norm == pytest.approx(np.log10(np.sum(lam ** row.alpha)), rel=1e-12)
    p = lam / lam.sum() + 1e-10
    assert row.entropy == pytest.approx(-np.sum(p * np.log(p)) / np.log(16 + 1e-10), rel=1e-12)
    assert row.sv_max == pytest.approx(np.sqrt(lam.max())) and row.matrix_rank == 16 and row.rank_loss == 0
    expected = "over-trained" if row.alpha < 2 else "under-trained" if row.alpha > 6 else ""
    assert row.warning == expected
    tiny = table.set_index("longname").loc["tiny"]
    assert tiny.status == "skipped" and "too few eigenvalues" in tiny.warning and np.isnan(tiny.alpha)
    assert not tiny.has_esd and "tiny" not in evals
    assert set(evals) == set(table.loc[table.status != "skipped", "longname"])


def test_size_filters_layer_selection_and_progress(small):
    table = analyze(small, max_evals=20, max_N=40)
    rows = table.set_index("longname")
    assert "too many eigenvalues" in rows.loc["conv", "warning"] and rows.loc["conv", "status"] == "skipped"
    assert "too large" in rows.loc["emb", "warning"]
    seen = []

    def progress(iterable, total):
        seen.append(total)
        return iterable

    picked = analyze(small, layers=["fc", "attn"], progress=progress)
    assert list(picked["longname"]) == ["attn.q", "attn.k", "attn.v", "fc"] and seen == [4]
    layer_id = int(rows.loc["fc", "layer_id"])
    assert "fc" not in set(analyze(small, layers=[-layer_id])["longname"])


def test_timm_fused_qkv_is_split_and_split_qkv_false_is_weightwatchers_layer_set():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, depth=2)
    names = [r.longname for r in discover_layers(model)]
    assert {"blocks.0.attn.qkv.q", "blocks.0.attn.qkv.k", "blocks.0.attn.qkv.v"} <= set(names)
    assert "blocks.0.attn.qkv" not in names
    q = model.blocks[0].attn.qkv.weight.detach()[:192]
    evals = analyze(model, layers=["blocks.0.attn.qkv.q"], return_eigenvalues=True)[1]
    assert np.allclose(evals["blocks.0.attn.qkv.q"], svd_evals(q), rtol=1e-9)
    ww_names = [r.longname for r in discover_layers(model, split_qkv=False)]
    assert "blocks.0.attn.qkv" in ww_names and "blocks.0.attn.qkv.q" not in ww_names


def test_delta_against_a_base_model(small):
    torch.manual_seed(1)
    other = Small()
    table, evals = analyze(other, base_model=small, return_eigenvalues=True)
    delta = (other.fc.weight - small.fc.weight).detach().double().numpy()
    assert np.allclose(evals["fc"], svd_evals(delta), rtol=1e-9)
    assert (table.loc[table.status != "skipped", "status"] == "success").all()
    bigger = Small()
    bigger.fc = nn.Linear(16, 31)
    with pytest.raises(ValueError, match="layer fc: shape"):
        analyze(bigger, base_model=small)
    with pytest.raises(ValueError, match="not found in base_model"):
        analyze(small, base_model=nn.Sequential())


def test_non_finite_weights_raise_one_line_or_fail_the_row(small):
    broken = Small()
    broken.load_state_dict(small.state_dict())
    with torch.no_grad():
        broken.conv.weight[0, 0, 0, 0] = float("nan")
        broken.emb.weight[3, 1] = float("inf")
    with pytest.raises(ValueError, match=r"^layer conv: non-finite weights$"):
        analyze(broken)
    table = analyze(broken, on_nonfinite="skip").set_index("longname")
    assert list(table.loc[["conv", "emb"], "status"]) == ["failed", "failed"]
    assert table.loc["conv", "warning"] == "non-finite weights" and np.isnan(table.loc["conv", "alpha"])
    assert table.loc["fc", "status"] == "success"


def test_mp_randomize_and_farms_extras_add_their_columns(small):
    options = dict(layers=["fc", "conv", "tiny"], mp_fit=True, randomize=True, farms=True, seed=0)
    table = analyze(small, **options)
    done = table[table.status == "success"]
    assert list(done["longname"]) == ["conv", "fc"]
    for column in ("sigma_mp", "bulk_max", "num_spikes", "mp_softrank", "max_rand_eval", "num_traps",
                   "alpha_farms"):
        assert column in table and done[column].notna().all() and np.isnan(table[column].iloc[-1]), column
    pd.testing.assert_frame_equal(table, analyze(small, **options))   # seeded shuffles: reproducible


def test_bad_arguments():
    with pytest.raises(ValueError, match="convention"):
        analyze(nn.Linear(10, 10), convention="nope")
    with pytest.raises(ValueError, match="on_nonfinite"):
        analyze(nn.Linear(10, 10), on_nonfinite="ignore")
    with pytest.raises(TypeError):
        analyze(np.zeros((3, 3)))
