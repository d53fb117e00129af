"""The lens machinery on constructed weights and tables: kernel taps that see only padding are found from their
gradient and left out of the ESD, a layer's inert scale is measured, the update lens pairs by seed, small layers
give no tail fit, and every layer gets its place in the network."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from weightscape import lenses
from weightscape.spectra.analyze import analyze
from weightscape.spectra.probes import INERT_TOLERANCE, dead_taps, scale_effect


class Tiny(nn.Module):
    """3 x 8 x 8 -> stride-4 3x3 conv (2 x 2 maps) -> BN -> a 5x5 conv with padding 2 on the 2 x 2 maps: its outer
    16 taps only ever multiply padding -> pool -> a linear head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 12, 3, stride=4, padding=1)
        self.bn = nn.BatchNorm2d(12)
        self.late = nn.Conv2d(12, 12, 5, padding=2)
        self.bn2 = nn.BatchNorm2d(12)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(self.bn2(self.late(x)))
        return self.head(x.mean(dim=(2, 3)))


def test_a_tap_that_sees_only_padding_is_found_from_its_gradient_and_left_out_of_the_esd():
    model = Tiny()
    dead = dead_taps(model, 8)
    # on a 2 x 2 map with padding 2 only the centre 3 x 3 block of the 5 x 5 kernel meets data
    live = {6, 7, 8, 11, 12, 13, 16, 17, 18}
    assert dead == {"late": sorted(set(range(25)) - live)}
    table = analyze(model, image_size=8).set_index("longname")
    assert table.at["late", "dead_taps"] == 16 and table.at["late", "num_evals"] == 12 * 9
    assert "16 of 25 kernel taps see only padding" in table.at["late", "warning"]
    assert table.at["stem", "dead_taps"] == 0
    everything = analyze(model).set_index("longname")
    assert everything.at["late", "num_evals"] == 12 * 25 and everything.at["late", "dead_taps"] == 0
    # the taps left out are exactly the ones a fine-tune cannot move: zero their weights, same ESD
    zeroed = Tiny()
    with torch.no_grad():
        zeroed.late.weight.view(12, 12, 25)[:, :, sorted(set(range(25)) - live)] = 0
    again = analyze(zeroed, image_size=8).set_index("longname")
    assert again.at["late", "log_norm"] == pytest.approx(table.at["late", "log_norm"])
    assert again.at["late", "log_norm"] != pytest.approx(everything.at["late", "log_norm"])


def test_scale_effect_sees_batch_norm_and_leaves_the_model_as_it_was():
    model = Tiny()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    effect = scale_effect(model, 8, ["stem", "late", "head"])
    assert effect["stem"] < INERT_TOLERANCE and effect["late"] < INERT_TOLERANCE  # batch norm follows them
    assert effect["head"] > 0.5  # doubling the head doubles the logits
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()) and model.training


def _layers(values, structure):
    """A layers table: {(stage, condition, seed): {longname: log_norm}} with families from the condition's name."""
    rows = []
    for (stage, condition, seed), per_layer in values.items():
        for longname, value in per_layer.items():
            rows.append(dict(dataset="d", model="m", seed=seed, condition=condition, stage=stage, status="success",
                             family="pretrained" if stage == "pretrained" else condition.split("_")[0],
                             longname=longname, layer_type="conv2d", log_norm=value, alpha=value + 2,
                             **structure[longname]))
    return pd.DataFrame(rows)


STRUCTURE = {"a": dict(layer_id=1, N=64, M=64, rf=1, num_evals=64), "b": dict(layer_id=2, N=96, M=1, rf=9, num_evals=9),
             "c": dict(layer_id=3, N=32, M=16, rf=9, num_evals=144), "d": dict(layer_id=4, N=10, M=10, rf=1,
                                                                                  num_evals=10)}


def test_the_update_lens_pairs_each_run_with_its_seeds_baseline_and_small_layers_fit_no_tail():
    values = {}
    for seed in (0, 1):
        values[("pretrained", "pretrained", seed)] = {k: 1.0 for k in STRUCTURE}
        for condition, shift in (("baseline", 0.0), ("dropout_0.5", 0.3)):
            values[("finetuned", condition, seed)] = {k: 1.1 + shift for k in STRUCTURE}
            values[("delta", condition, seed)] = {k: -1.0 + shift + 0.1 * seed for k in STRUCTURE}
    deltas = lenses.lens_deltas(_layers(values, STRUCTURE))
    update = deltas[(deltas["lens"] == "delta") & (deltas["metric"] == "log_norm")]
    drop = update[update["condition"] == "dropout_0.5"]
    assert np.allclose(drop["relative"], 0.3) and np.allclose(drop["finetuned"], -0.7 + 0.1 * drop["seed"])
    w = deltas[(deltas["lens"] == "W") & (deltas["metric"] == "log_norm") & (deltas["condition"] == "dropout_0.5")]
    assert np.allclose(w["relative"], 0.3) and np.allclose(w["delta"], 0.4)
    kept, excluded = lenses.eligible(deltas, min_evals=50)
    alpha = kept[kept["metric"] == "alpha"].set_index("longname")["relative"]
    assert alpha.loc[["b", "d"]].isna().all() and alpha.loc[["a", "c"]].notna().all()  # 9 and 10 eigenvalues
    assert kept.loc[kept["metric"] == "log_norm", "relative"].notna().all()  # the other metrics are kept
    reasons = excluded.set_index(["lens", "longname"])["reason"]
    assert reasons[("W", "b")] == "9 eigenvalues < stats.min_evals = 50: no power-law tail fit"
    assert set(excluded["longname"]) == {"b", "d"}


def test_every_layer_gets_a_position_and_a_kind_from_its_structure():
    names = [f"l{i}" for i in range(11)]
    rows = [dict(dataset="d", model="m", longname=n, layer_id=i, layer_type="dense" if i == 10 else "conv2d",
                 M=1 if i % 3 == 1 else 8, rf=1 if i % 3 == 2 else 9) for i, n in enumerate(names)]
    groups = lenses.layer_groups(pd.DataFrame(rows)).set_index("longname")
    assert groups.at["l0", "position"] == "stem" and groups.at["l10", "position"] == "head"
    assert list(groups.loc[names[1:10], "position"]) == ["early"] * 3 + ["middle"] * 3 + ["late"] * 3
    assert groups.at["l1", "kind"] == "depthwise conv" and groups.at["l2", "kind"] == "pointwise conv"
    assert groups.at["l3", "kind"] == "conv" and groups.at["l10", "kind"] == "linear"
    assert lenses.layer_kind("attention_q", 64, 1) == "attention q/k/v"
