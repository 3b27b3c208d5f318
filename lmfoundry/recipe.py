"""YAML recipes: one file describes a whole run, one section per stage.

A recipe is a mapping of section name -> mapping of fields. Each stage owns a dataclass for its
section and parses it with :func:`parse_section`, which rejects unknown keys and coerces scalar
strings to the field's declared type (PyYAML reads ``1e-3`` as a string, a classic trap). Command-line overrides use dotted paths (``--train.lr 3e-4``) and are applied to the raw
mapping before any section is parsed, so an override is indistinguishable from a recipe value.

Sections in use: ``run`` (output folder, seed), ``data`` (curation), ``tokenizer`` (BPE training),
``tokenize`` (token shards), ``model`` (FoundryConfig fields), ``train``, ``eval``, ``hub``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lmfoundry.atomic import write_text_atomic

T = TypeVar("T")
SECTIONS = ("run", "data", "tokenizer", "tokenize", "model", "train", "eval", "hub", "generate")


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans: only ``true``/``false``.

    PyYAML follows YAML 1.1, where ``yes/no/on/off`` are booleans too, so ``mixed_precision: no``
    (a string field whose allowed values include ``"no"``) would arrive as ``False``. Fields
    declared ``bool`` still accept ``yes``/``no``: :func:`parse_section` coerces those strings.
    """


_BOOL = "tag:yaml.org,2002:bool"
_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader subclass: no arbitrary objects


def builtin_recipe_path(name: str) -> Path:
    """Path of a recipe shipped in ``lmfoundry/recipes`` (``auto``, ``tiny``, ``small``, ``1b``)."""
    path = Path(str(resources.files("lmfoundry") / "recipes" / f"{name}.yaml"))
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(f"no built-in recipe named {name!r}; available: {', '.join(available)}")
    return path


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    """A recipe argument is a file path, or the name of a built-in recipe."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") or "/" in str(name_or_path):
        raise FileNotFoundError(f"recipe file not found: {path}")
    return builtin_recipe_path(str(name_or_path))


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read a recipe, check its section names, and apply ``--section.field value`` overrides."""
    path = resolve_recipe_path(name_or_path)
    try:
        raw = _load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    for section, body in raw.items():
        if section not in SECTIONS:
            raise ValueError(f"{path}: unknown section {section!r}; allowed: {', '.join(SECTIONS)}")
        if body is not None and not isinstance(body, dict):
            raise ValueError(f"{path}: section {section!r} must be a mapping of fields")
    recipe = {section: dict(body or {}) for section, body in raw.items()}
    apply_overrides(recipe, overrides or [])
    return recipe


def apply_overrides(recipe: dict[str, dict[str, Any]], overrides: list[str]) -> None:
    """Apply ``--section.field value`` (or ``--section.field=value``) pairs; values are YAML scalars."""
    pairs: list[tuple[str, str]] = []
    items = list(overrides)
    while items:
        item = items.pop(0)
        if not item.startswith("--") or "." not in item:
            raise ValueError(f"override {item!r}: expected --section.field VALUE")
        if "=" in item:
            key, value = item[2:].split("=", 1)
        else:
            if not items:
                raise ValueError(f"override {item!r} has no value")
            key, value = item[2:], items.pop(0)
        pairs.append((key, value))
    apply_values(recipe, dict(pairs))


def apply_values(recipe: dict[str, dict[str, Any]], values: dict[str, str | list[str]]) -> None:
    """Set ``section.field`` paths from command-line text: each value is read as a YAML scalar.

    A list of values (an option given several words) becomes a YAML list, unless it is a single
    word that is itself a YAML list (``[a, b]``).
    """
    for key, value in values.items():
        section, field = key.split(".", 1)
        if section not in SECTIONS:
            raise ValueError(f"option --{key}: unknown section {section!r}; allowed: {', '.join(SECTIONS)}")
        if isinstance(value, list):
            parsed = [_load_yaml(item) for item in value]
            recipe.setdefault(section, {})[field] = (
                parsed[0] if len(parsed) == 1 and isinstance(parsed[0], list) else parsed
            )
        else:
            recipe.setdefault(section, {})[field] = _load_yaml(value)


def parse_section(cls: type[T], recipe: dict[str, dict[str, Any]], section: str) -> T:
    """Build the dataclass ``cls`` from ``recipe[section]``; unknown fields are a ``ValueError``."""
    body = recipe.get(section, {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(body) - names)
    if unknown:
        raise ValueError(
            f"recipe section {section!r}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}"
        )
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(value, hints.get(name), f"{section}.{name}") for name, value in body.items()}
    return cls(**values)


def coerce_fields(cls: type, body: dict[str, Any], section: str) -> dict[str, Any]:
    """``body`` with each value coerced to the type ``cls.__init__`` declares for it (the ``model``
    section, whose class is a transformers config rather than a dataclass); unknown names pass through."""
    hints = typing.get_type_hints(cls.__init__)
    return {name: _coerce(value, hints.get(name), f"{section}.{name}") for name, value in body.items()}


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` as the int/float/bool the field declares, or a one-line error naming the field.

    Strings are read (``"1e-3"`` -> 0.001, ``"no"`` -> False for a bool); an int field refuses a
    fraction (``10.5``) and a bool field anything but true/false/yes/no, so no field silently holds
    a value of another type. Fields of other types are left as given.
    """
    candidates = {annotation, *typing.get_args(annotation)}
    if value is None and (type(None) in candidates or annotation is None):
        return None
    if bool in candidates:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.lower()]
        raise ValueError(f"recipe field {where}: expected true or false, got {value!r}")
    numbers = [kind for kind in (int, float) if kind in candidates]
    if not numbers:
        return value
    if isinstance(value, bool):
        raise ValueError(f"recipe field {where}: expected {numbers[0].__name__}, got {value!r}")
    if isinstance(value, str):
        for kind in numbers:
            try:
                return kind(value)
            except ValueError:
                continue
        raise ValueError(f"recipe field {where}: expected {' or '.join(k.__name__ for k in numbers)}, got {value!r}")
    if isinstance(value, float) and int in candidates and float not in candidates:
        if not value.is_integer():
            raise ValueError(f"recipe field {where}: expected an integer, got {value!r}")
        return int(value)
    if isinstance(value, int) and float in candidates and int not in candidates:
        return float(value)
    return value


def dump_recipe(recipe: dict[str, dict[str, Any]], path: str | Path) -> None:
    """Write the resolved recipe next to a run's outputs (atomically: temp file, then rename)."""
    write_text_atomic(path, yaml.safe_dump(recipe, sort_keys=False))
