"""The lens machinery on constructed weights and tables: kernel taps that see only padding are found from their
gradient and left out of the ESD, a layer's inert scale is measured, the update lens pairs by seed, small layers
give no tail fit, the answer's excluded.csv names both and neither reaches its effects, and every layer gets its
place in the network."""

import copy
import functools

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from weightscape import lenses
from weightscape.answer import TABLES, answer, read_table, write_answer
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


#: the conditions of the constructed grid: family, level, the size of a fine-tune's step
GRID = {"baseline": ("baseline", 0.0, 0.02), "dropout_0.3": ("dropout", 0.3, 0.03),
        "dropout_0.6": ("dropout", 0.6, 0.05), "weight_decay_0.001": ("weight_decay", 1e-3, 0.02),
        "weight_decay_0.01": ("weight_decay", 1e-2, 0.025), "augmix": ("diversity", np.nan, 0.03)}
#: Tiny's `late` conv at 8 x 8 inputs: the taps that see only padding
DEAD = sorted(set(range(25)) - {6, 7, 8, 11, 12, 13, 16, 17, 18})


def fine_tuned(pretrained: nn.Module, condition: str, seed: int, shrink_dead: bool) -> nn.Module:
    """A run's weights: every weight takes a random step of the condition's size, except the dead taps of `late`,
    which get no gradient; with `shrink_dead`, coupled L2 weight decay shrinks those taps anyway (as Adam's
    weight_decay does: the decay term alone drives them)."""
    family, level, size = GRID[condition]
    model = copy.deepcopy(pretrained)
    generator = torch.Generator().manual_seed(100 * seed + list(GRID).index(condition))
    with torch.no_grad():
        for name, p in model.named_parameters():
            step = size * torch.randn(p.shape, generator=generator)
            if name == "late.weight":
                step.view(12, 12, 25)[:, :, DEAD] = 0
            p.add_(step)
        if shrink_dead and family == "weight_decay":
            model.late.weight.view(12, 12, 25)[:, :, DEAD] *= 1 - 50 * level
    return model


@functools.lru_cache(maxsize=None)
def constructed_layers(shrink_dead: bool, image_size: int | None = 8) -> pd.DataFrame:
    """The pipeline's layers table of a 3-seed grid of Tiny fine-tunes: stage pretrained, finetuned and delta
    (Delta W against the pretrained weights), analysed at the model's input size."""
    pretrained = Tiny()
    tables = []
    for seed in range(3):
        tables.append(analyze(pretrained, image_size=image_size).assign(
            stage="pretrained", condition="pretrained", family="pretrained", seed=seed))
        for condition, (family, _, _) in GRID.items():
            model = fine_tuned(pretrained, condition, seed, shrink_dead)
            run = dict(condition=condition, family=family, seed=seed)
            tables.append(analyze(model, image_size=image_size).assign(stage="finetuned", **run))
            tables.append(analyze(model, base_model=pretrained, image_size=image_size).assign(stage="delta", **run))
    return pd.concat(tables, ignore_index=True).assign(dataset="d", model="m")


def constructed_runs() -> pd.DataFrame:
    return pd.DataFrame([dict(dataset="d", model="m", condition=c, family=f, level=level, seed=s)
                         for s in range(3) for c, (f, level, _) in GRID.items()])


def test_the_answer_names_dead_taps_and_small_layers_in_excluded_csv_and_neither_reaches_its_effects(tmp_path):
    plain = constructed_layers(shrink_dead=False)
    # the same runs, but weight decay also shrinks the dead taps, and the 27-eigenvalue stem's alpha fits carry a
    # large planted dropout effect: neither may reach the answer
    shrunk = constructed_layers(shrink_dead=True).copy()
    shrunk.loc[(shrunk["longname"] == "stem") & (shrunk["family"] == "dropout"), "alpha"] += 2.0
    late = plain[plain["longname"] == "late"]
    assert (late["dead_taps"] == 16).all() and (late["num_evals"] == 12 * 9).all()
    assert (plain.loc[plain["longname"] == "stem", "num_evals"] == 27).all()
    assert set(plain.loc[plain["status"] == "success", "longname"]) == {"stem", "late"}  # the 4-eigenvalue head

    result = answer(lenses.lens_deltas(plain), constructed_runs())
    write_answer(result, tmp_path)
    excluded = read_table(tmp_path / "excluded.csv")
    taps = excluded[excluded["reason"].str.contains("kernel taps")]
    assert taps.to_dict("records") == [dict(
        lens="all", dataset="d", model="m", longname="late", metrics="all",
        reason="16 of 25 kernel taps see only padding at this input size (zero gradient): left out of its ESD")]
    tail = excluded[excluded["longname"] == "stem"]
    assert sorted(tail["lens"]) == ["W", "delta"] and set(excluded["longname"]) == {"late", "stem"}
    assert (tail["reason"] == "27 eigenvalues < stats.min_evals = 50: no power-law tail fit").all()
    assert all("alpha" in m.split(",") and "entropy" not in m for m in tail["metrics"])
    # each seed's effect is the mean over layers: alpha's is the late conv's alone, the other metrics' both layers'
    deltas = lenses.lens_deltas(plain)
    effects = read_table(tmp_path / "effects.csv").set_index(["lens", "condition", "metric"])["mean"]
    for lens in ("W", "delta"):
        for metric, layers in (("alpha", ["late"]), ("entropy", ["stem", "late"])):
            part = deltas[(deltas["lens"] == lens) & (deltas["condition"] == "dropout_0.6")
                          & (deltas["metric"] == metric) & deltas["longname"].isin(layers)]
            assert part["relative"].notna().all() and set(part["longname"]) == set(layers)
            expected = part.groupby("seed")["relative"].mean().mean()
            assert effects[(lens, "dropout_0.6", metric)] == pytest.approx(expected, rel=1e-9, abs=1e-12)

    again = answer(lenses.lens_deltas(shrunk), constructed_runs())
    for name in TABLES:
        pd.testing.assert_frame_equal(again[name], result[name], obj=name)
    # ... though both would change them, were they let in: the taps' ESD and the stem's alpha differ
    every_tap = {shrink: constructed_layers(shrink, image_size=None) for shrink in (False, True)}
    wd = {shrink: t[(t["longname"] == "late") & (t["condition"] == "weight_decay_0.01") & (t["stage"] == "delta")]
          for shrink, t in every_tap.items()}
    assert not np.allclose(wd[False]["entropy"], wd[True]["entropy"])
    assert np.allclose(constructed_layers(False)["entropy"], constructed_layers(True)["entropy"], equal_nan=True)
    loose = {k: lenses.eligible(lenses.lens_deltas(t), min_evals=2)[0] for k, t in (("plain", plain),
                                                                                   ("shrunk", shrunk))}
    alpha = {k: d[(d["longname"] == "stem") & (d["metric"] == "alpha") & (d["family"] == "dropout")]["relative"]
             for k, d in loose.items()}
    assert np.allclose(alpha["shrunk"].to_numpy() - alpha["plain"].to_numpy(), 2.0)


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
