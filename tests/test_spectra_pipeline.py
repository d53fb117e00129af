"""The spectral stage from the outside: checkpoints, the `weightscape spectra` CLI, bad input, written files."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from weightscape.checkpoints import CheckpointError, load_checkpoint, save_weights
from weightscape.cli import main
from weightscape.models import build_model
from weightscape.spectra.esd import load_eigenvalues


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real checkpoint in the results-tree format: torchvision ResNet-18 (seeded random init, 10 classes)."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = build_model("torchvision:resnet18", 10, weights="random", head_seed=0).module
    save_weights(model, folder / "weights.safetensors")
    (folder / "model.json").write_text(json.dumps({"arch": "torchvision:resnet18", "num_classes": 10}))
    return folder, model


def test_checkpoint_round_trip_is_exact(checkpoint):
    folder, model = checkpoint
    loaded, info = load_checkpoint(folder / "weights.safetensors")
    assert info["arch"] == "torchvision:resnet18"
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_bad_checkpoints_are_one_line_errors_naming_the_file(checkpoint, tmp_path):
    folder, _ = checkpoint
    with pytest.raises(CheckpointError, match="nowhere.safetensors: file not found"):
        load_checkpoint(tmp_path / "nowhere.safetensors")
    (tmp_path / "model.json").write_text(json.dumps({"arch": "torchvision:resnet18", "num_classes": 7}))
    (tmp_path / "weights.safetensors").write_bytes((folder / "weights.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"weights.safetensors: does not match torchvision:resnet18 with 7"):
        load_checkpoint(tmp_path / "weights.safetensors")
    (tmp_path / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(tmp_path / "weights.safetensors")


def test_cli_spectra_writes_table_and_eigenvalues(checkpoint, tmp_path, capsys):
    folder, model = checkpoint
    out, evals = tmp_path / "layers.csv", tmp_path / "evals.npz"
    assert main(["spectra", str(folder / "weights.safetensors"), "--out", str(out), "--eigenvalues", str(evals)]) == 0
    table = pd.read_csv(out)
    convs = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert set(convs) <= set(table["longname"])
    stored = load_eigenvalues(evals)
    fc = model.fc.weight.detach().double().numpy()
    expected = np.sort(np.linalg.eigvalsh(fc @ fc.T))  # 10 x 512: the small Gram, no 1/N (WeightWatcher's)
    assert np.allclose(np.sort(stored["fc"]), expected, rtol=1e-9)
    row = table.set_index("longname").loc["fc"]
    assert row["log_norm"] == pytest.approx(np.log10(expected.sum()), rel=1e-9)
    assert "layers analysed" in capsys.readouterr().out


def test_cli_spectra_rejects_bad_input_in_one_line(checkpoint, tmp_path, capsys):
    folder, model = checkpoint
    assert main(["spectra", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x.csv")]) == 1
    assert capsys.readouterr().err.strip().endswith("missing.safetensors: file not found")
    assert main(["spectra", "no_such_arch", "--out", str(tmp_path / "x.csv")]) == 1
    assert "neither an existing checkpoint" in capsys.readouterr().err
    broken = {k: v.clone() for k, v in model.state_dict().items()}
    broken["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    (tmp_path / "nan").mkdir()
    from safetensors.torch import save_file

    save_file(broken, str(tmp_path / "nan" / "weights.safetensors"))
    (tmp_path / "nan" / "model.json").write_text((folder / "model.json").read_text())
    assert main(["spectra", str(tmp_path / "nan" / "weights.safetensors"), "--out", str(tmp_path / "y.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "layer2.0.conv1" in err and "non-finite" in err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()
