"""Bind a card template to session metadata: a subset of Microsoft's Adaptive Card Templating
(`adaptivecards-templating` 2.3.1, the Designer's engine) with the same results.

Supported: `${expr}` inside any string value (see `cards.expressions`) and
`"$when": "${expr}"` on the card and on elements in lists. The subset, and the two differences
kept on purpose, are listed in cards/README.md; `cards.template_checks` refuses at load what
is outside it, and tests/test_templating_conformance.py runs Microsoft's engine on the same
templates and data.

Why a walk that builds new values instead of text substitution over the JSON: a value bound
into a card is data, inserted once and never scanned again, so a guest who answers
`${Guest.Name}` or `{"$when": "${false}"}` sees exactly what they typed. Keys are never bound.
The walk follows the Adaptive Card schema (`cards.card_types`) to know which properties hold
text: a number bound alone into one is written as text, since Teams does not show a number
where the schema wants text.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from cards.card_types import (
    Slot,
    card_slot,
    holds_text,
    item_slot,
    object_definition,
    property_slot,
    slot_types,
)
from cards.expressions import Expression, ExpressionError, Literal, format_value, is_true, parse
from cards.schema import location

__all__ = ["TemplateError", "bind", "bind_text", "is_single_binding", "location", "split"]

WHEN = "$when"
# keys Microsoft's engine reads and leaves out of the card
RESERVED_KEYS = frozenset({"$data", "$when", "$root", "$index", "$host", "$_acTemplateVersion"})
_DROP = object()  # an object whose $when is not true
_Part = str | Expression
_Where = tuple[str | int, ...]


class TemplateError(ValueError):
    """A template that cannot be bound; `location` is JSON-path-ish, like `$.body[0].text`."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(f"{location}: {message}")
        self.message = message
        self.location = location


class SplitError(ValueError):
    pass


# ---------------------------------------------------------------------------- template strings


@functools.lru_cache(maxsize=4096)
def split(text: str) -> tuple[_Part, ...]:
    """A template string as Adaptive Expressions reads one: literal text and `${...}` parts.

    Only a string with `${` in it is a template (any other is text as it is). In one, `\\$` and
    `` \\` `` are a literal `$` and backtick; an unescaped backtick, a `${` that does not close on
    its line, `{` inside `${...}` and `${}` are refused (Microsoft's engine fails on the first and
    shows the others as text).
    """
    if "${" not in text:
        return (text,)
    parts: list[_Part] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and text[i + 1 : i + 2] in ("$", "`"):
            buf.append(text[i + 1])
            i += 2
        elif c == "`":
            raise SplitError(f"a backtick (`) at column {i + 1} in a text with ${{...}}: "
                             "Microsoft's engine cannot read it; write \\` instead")
        elif text.startswith("${", i):
            end = _template_end(text, i)
            if buf:
                parts.append("".join(buf))
                buf = []
            source = text[i + 2 : end]
            try:
                expression = parse(source)
            except ExpressionError as e:
                raise SplitError(f"bad expression ${{{_short(source)}}}: {e.message} "
                                 f"(column {e.position + 1} of the expression)") from None
            if isinstance(expression, Literal) and expression.value is None and expression.constant:
                raise SplitError("${null} alone: Microsoft's engine fails the whole card on it")
            parts.append(expression)
            i = end + 1
        else:
            buf.append(c)
            i += 1
    if buf or not parts:
        parts.append("".join(buf))
    return tuple(parts)


def _template_end(text: str, start: int) -> int:
    """Index of the `}` that ends the `${` at `start` (Adaptive Expressions' TEMPLATE token)."""
    i = start + 2
    while i < len(text):
        c = text[i]
        if c in "'\"":
            i = _string_end(text, i, start)
        elif c == "}":
            if i == start + 2:
                raise SplitError(f"empty ${{}} at column {start + 1}")
            return i
        elif c in "{\r\n`":
            what = {"{": "'{'", "`": "a backtick"}.get(c, "a line break")
            raise SplitError(f"'${{' at column {start + 1} holds {what} before its '}}': "
                             "keep each ${...} on one line, without { or backticks")
        i += 1
    raise SplitError(f"'${{' at column {start + 1} has no closing '}}'")


def _string_end(text: str, i: int, start: int) -> int:
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == "\\" and text[j + 1 : j + 2] in (quote, "\\"):
            j += 2
        elif text[j] == quote:
            return j
        else:
            j += 1
    raise SplitError(f"'${{' at column {start + 1}: a string in it is not closed")


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def single_binding(parts: tuple[_Part, ...]) -> Expression | None:
    """The expression when the string is exactly one `${...}` that is not a lone literal:
    then, in Microsoft's engine, the property takes the value's type. `"${'x'}"` and
    `"${12}"` are text there."""
    if len(parts) == 1 and isinstance(parts[0], Expression):
        expression = parts[0]
        if not (isinstance(expression, Literal) and expression.constant):
            return expression
    return None


def is_single_binding(text: str) -> bool:
    """True when `text` is exactly one `${...}` (so binding may keep the value's type)."""
    try:
        return single_binding(split(text)) is not None
    except SplitError:
        return False


def parts_at(text: str, where: _Where) -> tuple[_Part, ...]:
    try:
        return split(text)
    except SplitError as e:
        raise TemplateError(str(e), location(where)) from None


# ---------------------------------------------------------------------------- bind


def bind(template: Any, values: Mapping[str, Any]) -> Any:
    """A new structure with every `${...}` filled from `values` and every `$when` that is not
    true dropped. Returns None when the root's `$when` is not true. Raises TemplateError for a
    template whose expressions do not parse (check templates when config loads)."""
    slot = card_slot() if isinstance(template, dict) and template.get("type") == "AdaptiveCard" \
        else None
    result = _bind(template, values, (), slot)
    return None if result is _DROP or result is _MISSING else result


def bind_text(text: str, values: Mapping[str, Any]) -> str:
    """A text with its `${...}` filled: always text, whatever the values' types."""
    return format_value(_bind_string(text, values, (), frozenset({"string"})))


def _bind(node: Any, values: Mapping[str, Any], where: _Where, slot: Slot) -> Any:
    if isinstance(node, str):
        return _bind_string(node, values, where, slot_types(slot))
    if isinstance(node, dict):
        if WHEN in node and not _when_true(node[WHEN], values, (*where, WHEN)):
            return _DROP
        definition = object_definition(node, slot)
        out = {}
        for key, value in node.items():
            if key in RESERVED_KEYS:
                continue
            bound = _bind(value, values, (*where, key), property_slot(definition, key))
            if bound is _DROP:
                bound = None  # Microsoft's engine keeps the key, as null
            if bound is not _MISSING:
                out[key] = bound
        return out
    if isinstance(node, list | tuple):
        items_slot = item_slot(slot)
        out_items: list[Any] = []
        for i, item in enumerate(node):
            bound = _bind(item, values, (*where, i), items_slot)
            if bound is _DROP or bound is None or bound is _MISSING:
                continue  # Microsoft's engine leaves nulls out of lists
            if isinstance(bound, list):
                out_items.extend(bound)  # and flattens lists in lists
            else:
                out_items.append(bound)
        return out_items
    return node


_MISSING = object()  # a property bound alone to a value that is not there: left out


def _when_true(condition: Any, values: Mapping[str, Any], where: _Where) -> bool:
    """Microsoft's rule: kept only when `$when` is one expression that evaluates to true.

    A `$when` that is not an expression drops the object when it is truthy and keeps it when
    it is not (JSON `false`, `""`): that is what Microsoft's engine does; the load-time check
    refuses such templates.
    """
    if isinstance(condition, str) and "${" in condition:
        expression = single_binding(parts_at(condition, where))
        return expression is not None and is_true(expression.evaluate(values))
    falsy = condition is None or condition is False or condition == "" or (
        isinstance(condition, int | float) and not isinstance(condition, bool) and condition == 0)
    return falsy


def _bind_string(text: str, values: Mapping[str, Any], where: _Where,
                 types: frozenset[str]) -> Any:
    if "${" not in text:
        return text
    parts = parts_at(text, where)
    expression = single_binding(parts)
    if expression is None:
        return "".join(p if isinstance(p, str) else format_value(p.evaluate(values))
                       for p in parts)
    value = expression.evaluate(values)
    if holds_text(types) or isinstance(value, list | tuple | dict):
        # text where the schema wants text; and bound data never adds card structure
        return format_value(value)
    if value is None:
        return _MISSING
    return value
