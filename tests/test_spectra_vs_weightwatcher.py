"""weightscape.spectra against WeightWatcher 0.7.7 itself, on the same weights, layer by layer.

Three models: random-init torchvision ResNet-18 (seeded), a small torchvision VisionTransformer (uses
nn.MultiheadAttention; its zero-initialised head makes both tools' fit fail the same way) and the pretrained
EfficientNet-Lite0. WeightWatcher runs once per model (module-scoped fixtures): its default ``analyze()`` for the
columns and ``get_ESD(layer=id)`` for each layer's eigenvalues. ``get_ESD`` skips the conv2d_norm factor that
``analyze()`` applies, so its conv2d eigenvalues are halved here before comparing.
"""

import contextlib
import io
import logging
import warnings

import numpy as np
import pytest
import torch
import torchvision

from weightscape.models import build_model
from weightscape.spectra import analyze

RTOL = 1e-6
FLOAT_COLUMNS = ["alpha", "xmin", "xmax", "D", "sigma", "log_norm", "log_spectral_norm", "alpha_weighted",
                 "log_alpha_norm", "stable_rank", "entropy", "norm", "spectral_norm", "lambda_max", "sv_max", "sv_min"]
INT_COLUMNS = ["layer_id", "N", "M", "rf", "num_evals", "num_pl_spikes", "matrix_rank", "rank_loss",
               "weak_rank_loss"]
VIT_QKV = [f"encoder.layers.encoder_layer_{i}.self_attention.{p}" for i in range(2) for p in "qkv"]


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "resnet18":
        return torchvision.models.resnet18(weights=None).eval()
    if name == "small_vit":
        return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                    hidden_dim=64, mlp_dim=128, num_classes=10).eval()
    return build_model("efficientnet_lite0", 1000).module.eval()


@pytest.fixture(scope="module", params=["resnet18", "small_vit", "efficientnet_lite0"])
def compared(request):
    """(name, WeightWatcher details, {layer_id: WW eigenvalues}, our table, our eigenvalues) for one model."""
    import weightwatcher

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    model = build(request.param)
    watcher = weightwatcher.WeightWatcher(model=model)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = watcher.analyze()
        esds = {int(i): np.sort(np.asarray(watcher.get_ESD(layer=int(i)))) for i in details["layer_id"]}
    table, evals = analyze(model, return_eigenvalues=True)
    return request.param, details, esds, table, evals


def rel_err(ours, theirs) -> float:
    """Relative error, with equal infinities / NaNs (an all-zero layer's log-norms) counting as agreement."""
    ours, theirs = float(ours), float(np.nan if theirs is None else theirs)
    if ours == theirs or (np.isnan(ours) and np.isnan(theirs)):
        return 0.0
    return abs(ours - theirs) / abs(theirs) if theirs != 0 else abs(ours)


def test_same_layers(compared):
    name, details, _, table, _ = compared
    analysed = table[table["status"] != "skipped"]
    assert set(details["longname"]) <= set(analysed["longname"])
    only_ours = sorted(set(analysed["longname"]) - set(details["longname"]))
    # WeightWatcher never sees nn.MultiheadAttention's in_proj_weight; we split it into q, k, v
    assert only_ours == (sorted(VIT_QKV) if name == "small_vit" else [])
    assert set(table.loc[table["longname"].isin(VIT_QKV), "layer_type"]) <= {"attention_q", "attention_k",
                                                                           "attention_v"}


def test_eigenvalues_agree(compared):
    _, details, esds, _, evals = compared
    worst = 0.0
    for _, row in details.iterrows():
        theirs = esds[int(row.layer_id)] * (0.5 if row.layer_type == "conv2d" else 1.0)
        ours = evals[row.longname]
        assert len(ours) == len(theirs), row.longname
        nonzero = theirs != 0
        assert np.array_equal(ours[~nonzero], theirs[~nonzero]), row.longname
        err = np.max(np.abs(ours[nonzero] - theirs[nonzero]) / theirs[nonzero], initial=0.0)
        assert err <= RTOL, (row.longname, err)
        worst = max(worst, err)
    print(f"max relative eigenvalue error {worst:.1e}")


def test_columns_agree(compared):
    _, details, _, table, _ = compared
    ours = table.set_index("longname")
    worst = dict.fromkeys(FLOAT_COLUMNS, 0.0)
    for _, row in details.iterrows():
        mine = ours.loc[row.longname]
        assert mine["status"] == row["status"], row.longname
        for column in FLOAT_COLUMNS:
            err = rel_err(mine[column], row[column])
            assert err <= RTOL, (row.longname, column, mine[column], row[column])
            worst[column] = max(worst[column], err)
        for column in INT_COLUMNS:
            assert int(mine[column]) == int(row[column]), (row.longname, column)
        assert mine["layer_type"] == row["layer_type"] and mine["name"] == row["name"]
    print("max relative errors", {k: f"{v:.0e}" for k, v in worst.items()})
