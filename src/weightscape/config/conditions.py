"""Expand the config's families and declared conditions into the grid's list of conditions.

A condition is a plain dict (so Snakemake can track it as a rule parameter):
    name          wildcard-safe, unique
    family        baseline | dropout | weight_decay | diversity | synthetic
    kind          diversity: augment | noise | stacked; synthetic: the mixing scheme, replace | add (None otherwise)
    level         the number the family is compared by (dropout p, weight decay, noise std; 0 for the baseline,
                  None for augmentations that have no natural level)
    dropout       dropout p inserted in the network (0 = none)
    weight_decay  L2 / decoupled weight decay of the optimizer (0 = none)
    transforms    training-time augmentations [{name, args}] (empty = none)
    mix           synthetic only: {scheme: replace | add, p, generator} (None otherwise; see weightscape.synth.mixing)
    combines      combined only: [data condition, regularizer condition] whose data and regularizer it trains with
                  (the key is absent on every other condition)
"""

from __future__ import annotations

from typing import Any

# What each regularizer family's level sets (every family of weightscape.names.FAMILIES has an entry).
FAMILY_KNOB = {"baseline": None, "dropout": "dropout", "weight_decay": "weight_decay", "diversity": None,
               "synthetic": None, "combined": None}
MIX_SCHEMES = ("replace", "add")
DIVERSITY_KINDS = ("augment", "noise", "stacked")
#: the paper's single-augmentation sources (families.diversity.augment): names of weightscape.augment.TRANSFORMS
AUGMENT_SOURCES = ("autoaugment", "randaugment", "augmix", "trivialaugment")


def noise(std: float) -> dict:
    return {"name": "gaussian_noise", "args": {"std": std}}


AUTOAUGMENT = {"name": "autoaugment", "args": {"policy": "imagenet"}}
# The paper's stacked augmentations (Ba et al., Table of diversity sources).
STACKED_PRESETS: dict[str, list[dict]] = {
    "auto1": [AUTOAUGMENT, noise(0.05)],
    "auto2": [AUTOAUGMENT, noise(0.05), {"name": "hflip", "args": {"p": 0.5}}, {"name": "vflip", "args": {"p": 0.3}}],
    "auto3": [AUTOAUGMENT, {"name": "hflip", "args": {"p": 0.5}},
              {"name": "elastic", "args": {"alpha": 40.0, "sigma": 6.0}}, noise(0.05)],
}


def condition_name(family: str, level: float) -> str:
    """`dropout_0.1`, `weight_decay_1e-05`, `noise_0.03`: short, wildcard-safe and stable across runs."""
    return f"{family}_{level:g}"


def make_condition(name: str, family: str, level: float | None = None, dropout: float = 0.0,
                   weight_decay: float = 0.0, kind: str | None = None,
                   transforms: list[dict] | None = None, mix: dict | None = None) -> dict[str, Any]:
    """One condition dict with every field present (absent knobs are 0 / empty / None)."""
    knob = FAMILY_KNOB[family]
    values = {"dropout": float(dropout), "weight_decay": float(weight_decay)}
    if mix is not None:
        mix = {"scheme": mix["scheme"], "p": float(mix["p"]), "generator": mix["generator"]}
        kind = kind or mix["scheme"]
        level = mix["p"] if level is None else level
    if level is None and family != "diversity":
        level = values[knob] if knob else 0.0
    transforms = [{"name": t["name"], "args": dict(t.get("args", {}))} for t in transforms or []]
    return {"name": name, "family": family, "kind": kind, "level": None if level is None else float(level),
            **values, "transforms": transforms, "mix": mix}


def _diversity_conditions(diversity: dict) -> list[dict[str, Any]]:
    conditions = [make_condition(name, "diversity", kind="augment", transforms=[{"name": name}])
                  for name in diversity.get("augment", [])]
    conditions += [make_condition(condition_name("noise", std), "diversity", std, kind="noise",
                                  transforms=[noise(std)]) for std in diversity.get("noise", [])]
    conditions += [make_condition(name, "diversity", kind="stacked", transforms=STACKED_PRESETS[name])
                   for name in diversity.get("stacked", [])]
    return conditions


def _synthetic_conditions(synthetic: dict) -> list[dict[str, Any]]:
    """`replace_0.5`, `add_0.3`, ...: one condition per scheme and share p, all from the family's generator."""
    return [make_condition(condition_name(scheme, p), "synthetic",
                           mix={"scheme": scheme, "p": p, "generator": synthetic.get("generator")})
            for scheme in MIX_SCHEMES for p in synthetic.get(scheme, [])]


def combine(name: str, data: dict[str, Any], regularizer: dict[str, Any]) -> dict[str, Any]:
    """A `combined` condition: `data`'s training data (transforms or synthetic mix) under `regularizer`'s dropout /
    weight decay, at the regularizer's level."""
    condition = make_condition(name, "combined", regularizer["level"], dropout=regularizer["dropout"],
                               weight_decay=regularizer["weight_decay"], kind=data["kind"],
                               transforms=data["transforms"], mix=data["mix"])
    return {**condition, "combines": [data["name"], regularizer["name"]]}


def expand_conditions(config: dict[str, Any]) -> list[dict[str, Any]]:
    """All conditions of a validated config, families first (in config order), then declared ones (a combined
    condition takes its data and regularizer from the two conditions it names; unknown names are left for the
    config check to report)."""
    families = config.get("families", {})
    conditions = []
    if families.get("baseline", True):
        conditions.append(make_condition("baseline", "baseline"))
    for family in ("dropout", "weight_decay"):
        for level in families.get(family, []):
            conditions.append(make_condition(condition_name(family, level), family, level, **{family: level}))
    conditions += _diversity_conditions(families.get("diversity", {}))
    conditions += _synthetic_conditions(families.get("synthetic", {}))
    declared = config.get("conditions", [])
    conditions += [make_condition(**{k: v for k, v in c.items() if k != "combines"}) for c in declared
                   if c["family"] != "combined"]
    by_name = {c["name"]: c for c in conditions}
    for c in declared:
        parts = c.get("combines") or []
        if c["family"] == "combined" and len(parts) == 2 and all(name in by_name for name in parts):
            conditions.append(combine(c["name"], *(by_name[name] for name in parts)))
    return conditions
