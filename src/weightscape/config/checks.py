"""Checks a JSON schema cannot express: unique names, files that must exist, sizes against the real dataset,
model architectures the libraries know. Each failure is one ConfigError line naming the key."""

from __future__ import annotations

from pathlib import Path

from weightscape.config.conditions import DIVERSITY_KINDS, expand_conditions
from weightscape.names import DATA_FAMILIES, REGULARIZERS

WEIGHT_KEYWORDS = ("pretrained", "random")


def _unique(items: list[dict], key: str, what: str) -> None:
    from weightscape.config import ConfigError

    seen = set()
    for i, item in enumerate(items):
        if item["name"] in seen:
            raise ConfigError(f"{key}[{i}].name: duplicate {what} name {item['name']!r}; names must be unique")
        seen.add(item["name"])


def _check_dataset(i: int, dataset: dict, ood_per_class: int, base_dir: Path) -> None:
    from weightscape.config import ConfigError
    from weightscape.data.sources import SOURCES, SourceError

    key = f"datasets[{i}]"
    if dataset.get("root") and not Path(dataset["root"]).is_absolute():
        dataset = {**dataset, "root": str(base_dir / dataset["root"])}
    try:
        train_available, test_available = SOURCES[dataset["source"]].per_class(dataset)
    except SourceError as exc:
        raise ConfigError(f"{key}.root: {exc}") from None
    wanted = dataset["train_per_class"] + dataset["val_per_class"]
    if wanted > train_available:
        raise ConfigError(f"{key}.train_per_class: {dataset['train_per_class']} + val_per_class "
                          f"{dataset['val_per_class']} = {wanted} images per class, but {dataset['source']} has "
                          f"only {train_available} per class in its training split")
    test_wanted = dataset["test_per_class"] or test_available
    if test_wanted > test_available:
        raise ConfigError(f"{key}.test_per_class: {test_wanted} requested, {dataset['source']} has only "
                          f"{test_available} per class in its test split")
    if ood_per_class > test_wanted:
        raise ConfigError(f"ood.test_per_class: {ood_per_class} is more than the {test_wanted} test images per class "
                          f"of dataset {dataset['name']!r}")


def _check_model(i: int, model: dict, base_dir: Path) -> None:
    from weightscape.config import ConfigError
    from weightscape.models import check_arch, read_state_dict

    try:
        check_arch(model["arch"])
    except ValueError as exc:
        raise ConfigError(f"models[{i}].arch: {exc}") from None
    weights = model["weights"]
    if weights in WEIGHT_KEYWORDS:
        return
    path = base_dir / weights
    if not path.is_file():
        raise ConfigError(f"models[{i}].weights: {weights!r} is neither {' nor '.join(WEIGHT_KEYWORDS)} nor an "
                          f"existing weights file")
    try:
        read_state_dict(path)
    except Exception as exc:  # any reader failure: the job would fail the same way, later
        reason = " ".join(str(exc).split())[:200]
        raise ConfigError(f"models[{i}].weights: {weights!r} is not a readable checkpoint (.safetensors, or a "
                          f"torch state dict in .pt / .pth): {reason}") from None


def _check_conditions(config: dict, conditions: list[dict]) -> None:
    from weightscape.config import ConfigError

    if not conditions:
        raise ConfigError("families / conditions: the grid is empty; enable families.baseline or declare a condition")
    seen = {}
    for condition in conditions:
        if condition["name"] in seen:
            raise ConfigError(f"conditions: duplicate condition name {condition['name']!r} (also produced by "
                              f"families.{seen[condition['name']]}); names must be unique")
        seen[condition["name"]] = condition["family"]
    expanded = {c["name"]: c for c in conditions}
    for i, declared in enumerate(config["conditions"]):
        key, family = f"conditions[{i}]", declared["family"]
        if family == "combined":
            _check_combined(key, declared, expanded)
            continue
        if "combines" in declared:
            raise ConfigError(f"{key}.combines: only combined conditions take combines")
        knob = {"dropout": "dropout", "weight_decay": "weight_decay"}.get(family)
        if knob and knob not in declared:
            raise ConfigError(f"{key}.{knob}: a {family} condition must set {knob}")
        if family == "synthetic" and "mix" not in declared:
            raise ConfigError(f"{key}.mix: a synthetic condition must set mix {{scheme, p, generator}}")
        if family == "synthetic" and declared.get("kind", declared["mix"]["scheme"]) != declared["mix"]["scheme"]:
            raise ConfigError(f"{key}.kind: {declared['kind']!r} differs from mix.scheme {declared['mix']['scheme']!r}")
        if family != "synthetic" and "mix" in declared:
            raise ConfigError(f"{key}.mix: only synthetic conditions take mix")
        if family == "diversity":
            if declared.get("kind") not in DIVERSITY_KINDS:
                raise ConfigError(f"{key}.kind: a diversity condition must set kind to {', '.join(DIVERSITY_KINDS)}")
            if not declared.get("transforms"):
                raise ConfigError(f"{key}.transforms: a diversity condition needs at least one transform")
        elif family != "synthetic" and (declared.get("transforms") or "kind" in declared):
            extra = "transforms" if declared.get("transforms") else "kind"
            raise ConfigError(f"{key}.{extra}: only diversity conditions take {extra}")
        _check_transforms(declared.get("transforms", []), f"{key}.transforms")


def _check_combined(key: str, declared: dict, expanded: dict) -> None:
    """combines = [a diversity / synthetic condition, a dropout / weight-decay condition], both in the grid; the
    combined condition takes everything else from them."""
    from weightscape.config import ConfigError

    if "combines" not in declared:
        raise ConfigError(f"{key}.combines: a combined condition must name [data condition, regularizer condition]")
    extra = sorted(set(declared) - {"name", "family", "combines"})
    if extra:
        raise ConfigError(f"{key}.{extra[0]}: a combined condition takes its data and regularizer from combines, "
                          f"not from {extra[0]}")
    for position, (name, allowed) in enumerate(zip(declared["combines"], (DATA_FAMILIES, REGULARIZERS))):
        if name not in expanded:
            raise ConfigError(f"{key}.combines[{position}]: {name!r} is not a condition of the grid")
        if expanded[name]["family"] not in allowed:
            raise ConfigError(f"{key}.combines[{position}]: {name!r} is a {expanded[name]['family']} condition; "
                              f"allowed: {' or '.join(allowed)}")


def _check_generators(config: dict, base_dir: Path) -> None:
    from weightscape.config import ConfigError

    _unique(config["generators"], "generators", "generator")
    for i, generator in enumerate(config["generators"]):
        key, weights = f"generators[{i}].weights", generator["weights"]
        if generator["kind"] == "ddpm" and weights is not None:
            if not (base_dir / weights / "generator.json").is_file():
                raise ConfigError(f"{key}: {weights!r} is not a generator directory (no generator.json in it); "
                                  f"use a trained generator's directory or null to train one")
        if generator["kind"] == "stable_diffusion" and not weights:
            raise ConfigError(f"{key}: a stable_diffusion generator needs a hub id or a local pipeline directory")


def _check_synthetic(config: dict, conditions: list[dict]) -> None:
    """Synthetic conditions name a declared generator that makes enough images per class."""
    from weightscape.config import ConfigError
    from weightscape.synth.mixing import synthetic_needed

    generators = {g["name"]: g for g in config["generators"]}
    synthetic = [c for c in conditions if c["family"] == "synthetic"]
    for condition in synthetic:
        where = (f"conditions ({condition['name']}).mix.generator" if condition["name"] in
                 {c["name"] for c in config["conditions"]} else "families.synthetic.generator")
        name = condition["mix"]["generator"]
        if name not in generators:
            raise ConfigError(f"{where}: {name!r} is not a declared generator; declared: "
                              f"{', '.join(generators) or 'none (add one under generators)'}")
        for dataset in config["datasets"]:
            needed = synthetic_needed(condition["mix"]["scheme"], condition["mix"]["p"], dataset["train_per_class"])
            if needed > generators[name]["per_class"]:
                raise ConfigError(f"generators[{list(generators).index(name)}].per_class: condition "
                                  f"{condition['name']!r} needs {needed} synthetic images per class of dataset "
                                  f"{dataset['name']!r}, the generator makes {generators[name]['per_class']}")


def _check_transforms(spec: list[dict], key: str) -> None:
    from weightscape.augment import check_transforms
    from weightscape.config import ConfigError

    try:
        check_transforms(spec, key=key)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_train(train: dict) -> None:
    from weightscape.config import ConfigError
    from weightscape.train import OPTIMIZERS

    if (train["optimizer"], train["weight_decay_mode"]) not in OPTIMIZERS:
        allowed = ", ".join(f"{o}+{m}" for o, m in OPTIMIZERS)
        raise ConfigError(f"train.weight_decay_mode: {train['weight_decay_mode']!r} is not available with optimizer "
                          f"{train['optimizer']!r}; allowed combinations: {allowed}")


def check_semantics(config: dict, base_dir: Path) -> list[dict]:
    """Raise ConfigError on the first semantic problem of a schema-valid config (defaults already filled); return
    the grid's conditions (expanded once, here)."""
    _check_train(config["train"])
    _unique(config["datasets"], "datasets", "dataset")
    _unique(config["models"], "models", "model")
    for i, dataset in enumerate(config["datasets"]):
        _check_dataset(i, dataset, config["ood"]["test_per_class"], base_dir)
    for i, model in enumerate(config["models"]):
        _check_model(i, model, base_dir)
    conditions = expand_conditions(config)
    _check_conditions(config, conditions)
    _check_generators(config, base_dir)
    _check_synthetic(config, conditions)
    return conditions
