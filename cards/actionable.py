"""Whether someone must act on a card: it has inputs or buttons.

Delivery (pipelines/delivery.py) sends such a card again when a crash leaves it unknown
whether it arrived: a question nobody received would leave the guest stuck, while a second
copy of a notice would only be noise.
"""

from __future__ import annotations

from typing import Any

_INPUT_PREFIX = "Input."
# a link only opens a page: the chat does not wait on it
_RESPONDING = frozenset({"Action.Submit", "Action.Execute", "Action.ShowCard"})


def actionable(card: dict[str, Any] | None) -> bool:
    if not isinstance(card, dict):
        return False
    stack: list[Any] = [card]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and (kind.startswith(_INPUT_PREFIX) or kind in _RESPONDING):
                return True
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(node)
    return False
