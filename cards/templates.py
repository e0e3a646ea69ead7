"""Load card templates: the admin's JSON files and the built-in defaults in `cards/templates/`.

Why only a light check here: a template still holds `$when` keys and `${...}` strings, which the
card schema rejects; the full check is `check_template` on load plus `validate_card` on a bound
card (see `cards.schema`).
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from cards.binding import WHEN, TemplateError, is_single_binding
from cards.schema import location, validate_card

__all__ = [
    "BUILTIN_TEMPLATES",
    "builtin_template",
    "load_template",
    "parse_template",
    "validate_template",
]

BUILTIN_TEMPLATES = (
    "agent_connected",
    "agent_escalated",
    "agent_left",
    "agent_searching",
    "agent_waiting",
    "faq_solved",
    "guest_left",
    "summary",
    "transfer",
    "welcome",
)


# real cards nest a dozen levels; the schema validator recurses per level
MAX_TEMPLATE_DEPTH = 40


def _depth(value: Any) -> int:
    """Nesting depth, without recursion (and bounded: it stops past the limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_TEMPLATE_DEPTH:
            return level
        if isinstance(node, dict):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, level + 1) for v in node)
    return deepest


def parse_template(text: str, source: str) -> dict[str, Any]:
    """A template from JSON text; TemplateError naming `source` when it is not a card."""
    try:
        template = json.loads(text)
    except json.JSONDecodeError as e:
        raise TemplateError(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                            source) from None
    except RecursionError:
        raise TemplateError("nested too deeply to be a card", source) from None
    if _depth(template) > MAX_TEMPLATE_DEPTH:
        raise TemplateError(f"nested more than {MAX_TEMPLATE_DEPTH} levels deep: flatten it",
                            source)
    if not isinstance(template, dict):
        raise TemplateError(f"a card template must be a JSON object, not {type(template).__name__}",
                            source)
    if template.get("type") != "AdaptiveCard":
        raise TemplateError(f"'type' must be 'AdaptiveCard', not {template.get('type')!r}", source)
    return template


def load_template(path: Path) -> dict[str, Any]:
    """Read a template file; TemplateError with the file name on bad JSON or a non-card."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        if isinstance(e, FileNotFoundError):
            raise TemplateError(
                "file not found: check the path (relative to the config file)", str(path)
            ) from None
        reason = getattr(e, "strerror", None) or str(e)
        raise TemplateError(f"cannot read: {reason}", str(path)) from None
    return parse_template(text, str(path))


@functools.cache
def _builtin(name: str) -> dict[str, Any]:
    if name not in BUILTIN_TEMPLATES:
        raise KeyError(f"no built-in template {name!r} (known: {', '.join(BUILTIN_TEMPLATES)})")
    text = resources.files("cards").joinpath(f"templates/{name}.json").read_text("utf-8")
    return parse_template(text, f"built-in {name}.json")


def builtin_template(name: str) -> dict[str, Any]:
    """A fresh copy of a built-in template: "welcome", "transfer" or "summary"."""
    return copy.deepcopy(_builtin(name))


def validate_template(template: dict[str, Any]) -> list[str]:
    """Schema problems of an unbound template, so a broken card is found when config loads.

    Every `$when` branch is kept (each may show), and a property whose whole value is one
    `${...}` is not type-checked (its type is only known once bound).
    """
    whole: set[str] = set()
    stripped = _strip_when(template, (), whole)
    return [p for p in validate_card(stripped) if p.split(": ", 1)[0] not in whole]


def _strip_when(node: Any, where: tuple[str | int, ...], whole: set[str]) -> Any:
    if isinstance(node, dict):
        return {k: _strip_when(v, (*where, k), whole) for k, v in node.items() if k != WHEN}
    if isinstance(node, list):
        return [_strip_when(item, (*where, i), whole) for i, item in enumerate(node)]
    if isinstance(node, str) and is_single_binding(node):
        whole.add(location(where))
    return node
