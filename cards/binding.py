"""Bind a card template to session metadata: the safe subset of Adaptive Card templating.

Supported: `${expr}` inside any string value (see `cards.expressions`) and `"$when": "${expr}"` on
any object. Not supported: `$data` repetition, `$index`, `$root` and the AEL function library.

Why a walk that builds new values instead of text substitution over the JSON: a value bound
into a card is data, inserted once and never scanned again, so a guest who answers
`${Guest.Name}` or `{"$when": "${false}"}` sees exactly what they typed, and a value can never
add card structure (only strings, numbers and booleans keep their type; anything else becomes
text). Keys are never bound.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cards.expressions import Expression, ExpressionError, format_value, parse, truthy

__all__ = ["TemplateError", "bind", "check_template", "template_expressions"]

WHEN = "$when"
_SUPPORTED_DOLLAR_KEYS = {WHEN, "$schema"}
_DROP = object()  # an object whose $when is false
_Part = str | Expression


class TemplateError(ValueError):
    """A template that cannot be bound; `location` is JSON-path-ish, like `$.body[0].text`."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(f"{location}: {message}")
        self.message = message
        self.location = location


@functools.lru_cache(maxsize=4096)
def _split(text: str) -> tuple[_Part, ...]:
    """Split a template string into literal text and parsed `${...}` expressions."""
    parts: list[_Part] = []
    start = 0
    while (open_at := text.find("${", start)) != -1:
        close_at = _closing_brace(text, open_at + 2)
        if close_at == -1:
            raise _SplitError(f"'${{' at column {open_at + 1} has no closing '}}'")
        if open_at > start:
            parts.append(text[start:open_at])
        source = text[open_at + 2 : close_at]
        try:
            parts.append(parse(source))
        except ExpressionError as e:
            raise _SplitError(
                f"bad expression ${{{_short(source)}}}: {e.message} "
                f"(column {e.position + 1} of the expression)"
            ) from None
        start = close_at + 1
    if start < len(text) or not parts:
        parts.append(text[start:])
    return tuple(parts)


class _SplitError(ValueError):
    pass


def is_single_binding(text: str) -> bool:
    """True when `text` is exactly one `${...}` (so binding keeps the value's type)."""
    try:
        parts = _split(text)
    except _SplitError:
        return False
    return len(parts) == 1 and isinstance(parts[0], Expression)


def _closing_brace(text: str, i: int) -> int:
    """Index of the `}` ending an expression, skipping quoted strings (which may hold `}`)."""
    quote = ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "}":
            return i
        i += 1
    return -1


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------- locations

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


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


def _parts(text: str, where: tuple[str | int, ...]) -> tuple[_Part, ...]:
    try:
        return _split(text)
    except _SplitError as e:
        raise TemplateError(str(e), location(where)) from None


def _when_expression(value: Any, where: tuple[str | int, ...]) -> Expression | bool:
    if isinstance(value, bool):
        return value
    parts = _parts(value, where) if isinstance(value, str) else ()
    if len(parts) != 1 or not isinstance(parts[0], Expression):
        raise TemplateError('$when must be one expression like "${exists(Guest.Name)}"',
                            location(where))
    return parts[0]


# ---------------------------------------------------------------------------- bind


def bind(template: Any, values: Mapping[str, Any]) -> Any:
    """A new structure with every `${...}` filled from `values` and every false `$when` dropped.

    Returns None when the root object's `$when` is false. Raises TemplateError for a template
    whose expressions do not parse (check templates with `check_template` when config loads).
    """
    result = _bind(template, values, ())
    return None if result is _DROP else result


def _bind(node: Any, values: Mapping[str, Any], where: tuple[str | int, ...]) -> Any:
    if isinstance(node, str):
        return _bind_string(node, values, where)
    if isinstance(node, dict):
        if WHEN in node:
            condition = _when_expression(node[WHEN], (*where, WHEN))
            keep = condition if isinstance(condition, bool) else condition.evaluate(values)
            if not truthy(keep):
                return _DROP
        out = {}
        for key, value in node.items():
            if key != WHEN and (bound := _bind(value, values, (*where, key))) is not _DROP:
                out[key] = bound
        return out
    if isinstance(node, list | tuple):
        bound_items = (_bind(item, values, (*where, i)) for i, item in enumerate(node))
        return [item for item in bound_items if item is not _DROP]
    return node


def _bind_string(text: str, values: Mapping[str, Any], where: tuple[str | int, ...]) -> Any:
    if "${" not in text:
        return text
    parts = _parts(text, where)
    if len(parts) == 1 and isinstance(parts[0], Expression):
        value = parts[0].evaluate(values)
        if isinstance(value, str | int | float | bool):
            return value
        return format_value(value)
    return "".join(p if isinstance(p, str) else format_value(p.evaluate(values)) for p in parts)


# ---------------------------------------------------------------------------- checks


_Where = tuple[str | int, ...]


def _strings(node: Any, where: _Where) -> Iterator[tuple[_Where, Any]]:
    """Every string value (and every $when value) in the template, with where it is."""
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == WHEN:
                yield (*where, key), value
            else:
                yield from _strings(value, (*where, key))
    elif isinstance(node, list | tuple):
        for i, item in enumerate(node):
            yield from _strings(item, (*where, i))


def _expressions_at(where: tuple[str | int, ...], value: Any) -> list[Expression]:
    if where and where[-1] == WHEN:
        condition = _when_expression(value, where)
        return [] if isinstance(condition, bool) else [condition]
    if "${" not in value:
        return []
    return [p for p in _parts(value, where) if isinstance(p, Expression)]


def template_expressions(template: Any) -> list[tuple[str, Expression]]:
    """(location, expression) for every binding; TemplateError at the first that does not parse."""
    found: list[tuple[str, Expression]] = []
    for where, value in _strings(template, ()):
        found.extend((location(where), expr) for expr in _expressions_at(where, value))
    return found


def check_template(template: Any, known_paths: Callable[[str], bool]) -> list[str]:
    """Every problem in a template, as sentences for an admin: bad expressions, unknown names."""
    problems: list[str] = []
    for where, value in _strings(template, ()):
        try:
            expressions = _expressions_at(where, value)
        except TemplateError as e:
            problems.append(str(e))
            continue
        for path in sorted({p for expr in expressions for p in expr.paths()}):
            if not known_paths(path):
                problems.append(f"{location(where)}: unknown metadata name {path!r}")
    problems.extend(
        f"{location(where)}: {key!r} is not supported (only $when and ${{...}})"
        for where, key in _dollar_keys(template, ())
    )
    return problems


def _dollar_keys(node: Any, where: tuple[str | int, ...]) -> Iterator[tuple[tuple, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("$") and key not in _SUPPORTED_DOLLAR_KEYS:
                yield where, key
            yield from _dollar_keys(value, (*where, key))
    elif isinstance(node, list | tuple):
        for i, item in enumerate(node):
            yield from _dollar_keys(item, (*where, i))
