"""Activities for the paths that still go through botbuilder (an agent's command answers,
the stock channel)."""

from __future__ import annotations

from typing import Any

from botbuilder.core import MessageFactory
from botbuilder.schema import Activity

from cards.schema import attachment


def message_activity(text: str | None = None, card: dict[str, Any] | None = None) -> Activity:
    """A botbuilder message with a card, or else text."""
    if card is not None:
        return MessageFactory.attachment(attachment(card))
    return MessageFactory.text(text or "")
