"""The words a card shows, as plain text: for transcripts an agent reads, logs and tests."""

from __future__ import annotations

from typing import Any

__all__ = ["card_text"]


def card_text(card: Any) -> str:
    """Lines of visible text: TextBlocks, RichTextBlocks, facts ("title: value"), [buttons]."""
    lines: list[str] = []
    _collect(card, lines)
    return "\n".join(line for line in lines if line)


def _collect(node: Any, lines: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, lines)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "TextBlock":
        lines.append(str(node.get("text", "")))
    elif kind == "RichTextBlock":
        runs = node.get("inlines", [])
        lines.append("".join(r if isinstance(r, str) else str(r.get("text", "")) for r in runs))
    elif kind == "FactSet":
        lines.extend(f"{f.get('title', '')}: {f.get('value', '')}" for f in node.get("facts", []))
    elif isinstance(kind, str) and kind.startswith("Action.") and node.get("title"):
        lines.append(f"[{node['title']}]")
    for key in ("body", "items", "columns", "actions", "rows", "cells", "card"):
        if key in node:
            _collect(node[key], lines)
