"""Expand the config's families and declared conditions into the grid's list of conditions.

A condition is a plain dict (so Snakemake can track it as a rule parameter):
    name        wildcard-safe, unique
    family      baseline | dropout | weight_decay  (later: diversity, synthetic)
    level       the number the family is compared by (dropout p, weight decay lambda; 0 for the baseline)
    dropout     dropout p inserted in the network (0 = none)
    weight_decay  L2 / decoupled weight decay of the optimizer (0 = none)
"""

from __future__ import annotations

from typing import Any

# What each family's level sets, and how a level is written into a condition name.
FAMILY_KNOB = {"baseline": None, "dropout": "dropout", "weight_decay": "weight_decay"}


def condition_name(family: str, level: float) -> str:
    """`dropout_0.1`, `weight_decay_1e-05`: short, wildcard-safe and stable across runs."""
    return f"{family}_{level:g}"


def make_condition(name: str, family: str, level: float | None = None, dropout: float = 0.0,
                   weight_decay: float = 0.0) -> dict[str, Any]:
    """One condition dict with every field present (absent knobs are 0)."""
    knob = FAMILY_KNOB[family]
    values = {"dropout": float(dropout), "weight_decay": float(weight_decay)}
    if level is None:
        level = values[knob] if knob else 0.0
    return {"name": name, "family": family, "level": float(level), **values}


def expand_conditions(config: dict[str, Any]) -> list[dict[str, Any]]:
    """All conditions of a validated config, families first (in config order), then declared ones."""
    families = config.get("families", {})
    conditions = []
    if families.get("baseline", True):
        conditions.append(make_condition("baseline", "baseline"))
    for family in ("dropout", "weight_decay"):
        for level in families.get(family, []):
            conditions.append(make_condition(condition_name(family, level), family, level, **{family: level}))
    for declared in config.get("conditions", []):
        conditions.append(make_condition(**declared))
    return conditions
