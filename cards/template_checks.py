"""Load-time checks of templates: what is outside the subset of Adaptive Card Templating, names
no stage provides, and values of the wrong type for where they are bound.

Why at load: Microsoft's engine and Teams do not report these; the card just comes out wrong
(an element always dropped, a number Teams does not show, a card that fails to expand). Each
problem is a sentence naming where it is (`$.body[0].text`) and what to write instead.

Types: a metadata name's type comes from `name_types` ("string", "number", "boolean"; a name
not in it may be anything); a property's from the Adaptive Card 1.5 schema (`cards.card_types`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cards.binding import WHEN, SplitError, parts_at, single_binding, split
from cards.card_types import (
    Slot,
    card_slot,
    holds_text,
    item_slot,
    object_definition,
    property_slot,
    slot_types,
)
from cards.expressions import (
    And,
    Call,
    Compare,
    Expression,
    ListLiteral,
    Literal,
    Not,
    Or,
    Path,
)
from cards.schema import location

__all__ = ["check_template", "expression_problems", "expression_type", "template_expressions"]

SUPPORTED_DOLLAR_KEYS = frozenset({WHEN, "$schema"})
_Where = tuple[str | int, ...]
_DESCRIBE = {"string": "text", "number": "a number", "boolean": "true or false",
             "list": "a list", "null": "null", "object": "an object"}


# ---------------------------------------------------------------------------- expression types


def expression_type(expr: Expression, name_types: Mapping[str, str]) -> str:
    """"string", "number", "boolean", "list", "null", or "any" when it depends on the data."""
    if isinstance(expr, Literal):
        value = expr.value
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "boolean"
        return "string" if isinstance(value, str) else "number"
    if isinstance(expr, Path):
        return name_types.get(expr.name, "any")
    if isinstance(expr, ListLiteral):
        return "list"
    if isinstance(expr, Not | And | Compare):
        return "boolean"
    if isinstance(expr, Or):
        return "boolean"  # true, or its last operand's false or null
    if isinstance(expr, Call):
        return "string" if expr.name in ("toLower", "toUpper") else "boolean"
    return "any"


def _describe(expr: Expression) -> str:
    if isinstance(expr, Path):
        return expr.name
    if isinstance(expr, Literal):
        return repr(expr.value) if expr.value is not None else "null"
    return "the expression"


def expression_problems(expr: Expression, name_types: Mapping[str, str]) -> list[str]:
    """Type mistakes inside an expression that Microsoft's engine fails on when it runs."""
    problems: list[str] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        stack.extend(node.children())
        if isinstance(node, Call) and node.name in ("toLower", "toUpper"):
            kind = expression_type(node.args[0], name_types)
            if kind in ("number", "boolean", "list"):
                problems.append(f"{node.name}() takes text: {_describe(node.args[0])} is "
                                f"{_DESCRIBE[kind]}")
        if isinstance(node, Compare) and node.op not in ("==", "!="):
            left = expression_type(node.left, name_types)
            right = expression_type(node.right, name_types)
            known = {left, right} - {"any", "null"}
            unorderable = known - {"number", "string"}
            if unorderable or len(known) > 1:
                problems.append(
                    f"{_describe(node.left)} {node.op} {_describe(node.right)} compares "
                    f"{_DESCRIBE.get(left, 'a value')} with {_DESCRIBE.get(right, 'a value')}: "
                    "only two numbers or two texts can be ordered"
                )
    return problems


# ---------------------------------------------------------------------------- the walk


@dataclass(frozen=True)
class _Value:
    where: _Where
    value: Any
    types: frozenset[str]  # what the schema allows here (empty: it does not say)
    when_allowed: bool  # for a $when: is its object the card or an item of a list?


def _walk(node: Any, where: _Where, slot: Slot, in_list_or_root: bool) -> Iterator[_Value]:
    """Every string and `$when` of the template, with what the schema expects there."""
    if isinstance(node, str):
        yield _Value(where, node, slot_types(slot), False)
    elif isinstance(node, dict):
        definition = object_definition(node, slot)
        for key, value in node.items():
            if key == WHEN:
                yield _Value((*where, key), value, frozenset({"boolean"}), in_list_or_root)
            else:
                yield from _walk(value, (*where, key), property_slot(definition, key), False)
    elif isinstance(node, list | tuple):
        items = item_slot(slot)
        for i, item in enumerate(node):
            yield from _walk(item, (*where, i), items, True)


def _root_slot(template: Any) -> Slot:
    if isinstance(template, dict) and template.get("type") == "AdaptiveCard":
        return card_slot()
    return None


def template_expressions(template: Any) -> list[tuple[str, Expression]]:
    """(location, expression) for every binding; TemplateError at the first that does not
    parse."""
    found: list[tuple[str, Expression]] = []
    for item in _walk(template, (), _root_slot(template), True):
        if isinstance(item.value, str):
            found.extend((location(item.where), p) for p in parts_at(item.value, item.where)
                         if isinstance(p, Expression))
    return found


def check_template(
    template: Any,
    known_paths: Callable[[str], bool],
    name_types: Mapping[str, str] | None = None,
) -> list[str]:
    """Every problem in a template (or a text with bindings), as sentences for an admin."""
    types = name_types or {}
    problems: list[str] = []
    for item in _walk(template, (), _root_slot(template), True):
        where = location(item.where)
        if item.where and item.where[-1] == WHEN:
            problems.extend(f"{where}: {p}" for p in _when_problems(item, types))
        if not isinstance(item.value, str) or "${" not in item.value:
            continue
        try:
            parts = split(item.value)
        except SplitError as e:
            problems.append(f"{where}: {e}")
            continue
        expressions = [p for p in parts if isinstance(p, Expression)]
        for path in sorted({p for e in expressions for p in e.paths()}):
            if not known_paths(path):
                problems.append(f"{where}: unknown metadata name {path!r}")
        for expression in expressions:
            problems.extend(f"{where}: {p}" for p in expression_problems(expression, types))
        if item.where and item.where[-1] != WHEN:
            problems.extend(f"{where}: {p}" for p in _slot_problems(parts, item.types, types))
    problems.extend(
        f"{location(where)}: {key!r} is not supported (only $when and ${{...}})"
        for where, key in _dollar_keys(template, ())
    )
    return problems


def _when_problems(item: _Value, types: Mapping[str, str]) -> list[str]:
    shape = '$when must be one expression like "${exists(Guest.Name)}"'
    if not isinstance(item.value, str) or "${" not in item.value:
        return [f"{shape}: Microsoft's engine drops the element for anything else"]
    try:
        parts = split(item.value)
    except SplitError:
        return []  # reported with the other string problems
    expression = single_binding(parts)
    if expression is None:
        return [f"{shape}: this one is text in Microsoft's engine, so the element is always "
                "dropped"]
    problems = []
    kind = expression_type(expression, types)
    if kind not in ("boolean", "any"):
        problems.append(f"$when needs true or false, and {_describe(expression)} is "
                        f"{_DESCRIBE.get(kind, kind)}: Microsoft's engine drops the element "
                        "for anything but true (write exists(...) or !empty(...))")
    if not item.when_allowed:
        problems.append("$when works on the card and on items of a list: on an object that "
                        "is a property's value Microsoft's engine leaves the property null")
    return problems


def _slot_problems(parts: tuple, allowed: frozenset[str], types: Mapping[str, str]) -> list[str]:
    """A `${...}` that is the whole value takes the value's type: it must fit the property."""
    if len(parts) != 1 or not isinstance(parts[0], Expression):
        return []  # text: fits wherever text does (the schema check of the card says where)
    expression = single_binding(parts)
    wants = allowed - {"null"}
    if expression is None:  # a lone literal: text in Microsoft's engine
        if wants and "string" not in wants:
            return [f"a lone literal like ${{{_describe(parts[0])}}} is text in Microsoft's "
                    f"engine, and this property needs {_wanted(wants)}: write the value "
                    "without ${}"]
        return []
    kind = expression_type(expression, types)
    if kind == "list":
        return ["a list bound as a whole value would add card structure: bind text"]
    if not wants or holds_text(wants):
        return []  # unknown to the schema, or text: any value is written as text
    if kind in ("string", "number", "boolean") and kind not in wants:
        return [f"this property needs {_wanted(wants)}, and {_describe(expression)} is "
                f"{_DESCRIBE[kind]}"]
    return []


def _wanted(wants: frozenset[str]) -> str:
    return " or ".join(_DESCRIBE.get(w, w) for w in sorted(wants))


def _dollar_keys(node: Any, where: _Where) -> Iterator[tuple[_Where, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("$") and key not in SUPPORTED_DOLLAR_KEYS:
                yield where, key
            yield from _dollar_keys(value, (*where, key))
    elif isinstance(node, list | tuple):
        for i, item in enumerate(node):
            yield from _dollar_keys(item, (*where, i))
