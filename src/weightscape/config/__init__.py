"""Load and validate a weightscape config: JSON schema with defaults, then semantic checks, then the condition grid.

Shared by the Snakefile and the CLI. Every problem is reported as one `ConfigError` line that names the offending
key and what is allowed, before any job runs.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from weightscape.config.conditions import expand_conditions

__all__ = ["ConfigError", "expand_conditions", "load_config", "schema", "section_with_defaults", "validate_config",
           "validated_settings"]


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the key and what is allowed."""


def schema() -> dict:
    """The JSON schema (also the defaults file) shipped with the package."""
    text = resources.files("weightscape.config").joinpath("schema.yaml").read_text()
    return yaml.safe_load(text)


def _with_defaults(validator_class):
    """A validator that also writes `default:` values into the instance (the recipe in the jsonschema FAQ,
    the same mechanism snakemake.utils.validate uses)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else (f".{part}" if parts else str(part)))
    return "".join(parts) or "<top level>"


_BOUND_SYMBOLS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def _describe(error: jsonschema.ValidationError) -> str:
    """One line: which key, what was wrong, what is allowed."""
    where = _key_path(error)
    kind, expected = error.validator, error.validator_value
    if kind == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(error.schema.get("properties", {}))
        prefix = f"{where}." if where != "<top level>" else ""
        return f"{prefix}{unknown[0]}: unknown key; allowed keys here: {allowed}"
    if kind == "enum":
        return f"{where}: {error.instance!r} is not allowed; choose one of: {', '.join(map(str, expected))}"
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return f"{where}: expected {' or '.join(types)}, got {type(error.instance).__name__} {error.instance!r}"
    if kind in _BOUND_SYMBOLS:
        bounds = [f"{_BOUND_SYMBOLS[k]} {error.schema[k]}" for k in _BOUND_SYMBOLS if k in error.schema]
        return f"{where}: {error.instance!r} is out of range; allowed: {' and '.join(bounds)}"
    if kind == "minItems":
        return f"{where}: needs at least {expected} item(s), got {len(error.instance)}"
    if kind == "uniqueItems":
        return f"{where}: contains duplicates ({error.instance!r}); each value may appear once"
    if kind == "required":
        return f"{where}: {error.message}"
    if kind == "pattern":
        return (f"{where}: {error.instance!r} is not a valid name; use letters, digits, '_', '.', '-' "
                f"(starting with a letter or digit)")
    return f"{where}: {error.message}"


def _validate(config: dict[str, Any], base_dir: str | Path) -> list[dict[str, Any]]:
    """Schema (defaults filled in place), then semantic checks; returns the grid's conditions, expanded once."""
    from weightscape.config.checks import check_semantics  # heavy imports (torch, timm) only when needed

    if not isinstance(config, dict):
        raise ConfigError(f"<top level>: expected a mapping of keys, got {type(config).__name__}")
    validator_class = _with_defaults(jsonschema.Draft202012Validator)
    validator = validator_class(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_describe(best))
    return check_semantics(config, Path(base_dir))


def section_with_defaults(name: str, section: dict[str, Any] | None = None) -> dict[str, Any]:
    """One config section (e.g. "stats") checked against its part of the schema, its defaults filled in: for
    library callers that take a section without the whole config (the schema stays the one home of defaults)."""
    full = schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)({**full["properties"][name], "$defs": full["$defs"]})
    instance = copy.deepcopy(section or {})
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        nested = error.absolute_path or error.validator == "additionalProperties"
        raise ConfigError(f"{name}.{_describe(error)}" if nested else f"{name}: {_describe(error)}")
    return instance


def validate_config(config: dict[str, Any], base_dir: str | Path = ".") -> dict[str, Any]:
    """Validate `config` (in place: defaults are filled in) and return it.

    `base_dir` resolves relative paths (dataset roots, weights files) the way the workflow will see them.
    Raises ConfigError (one line) on the first problem found.
    """
    _validate(config, base_dir)
    return config


def validated_settings(config: dict[str, Any], base_dir: str | Path = "."):
    """Validate `config` (as validate_config) and return it as weightscape.settings.Settings, the grid's
    conditions expanded once: what rules/common.smk builds on every workflow parse."""
    from weightscape.settings import Settings

    return Settings.from_config(config, conditions=_validate(config, base_dir))


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it (relative paths resolve against the current directory)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    return validate_config(config or {})
