"""Replies in the guest's turn, as JSON, straight to the pooled outbound client.

What botbuilder does for each reply (MessageFactory, `TurnContext.send_activity`, which
deep-copies the activity with its card, applies the conversation reference, then msrest
serializes it) costs more CPU than the rest of our turn. The JSON it produces is fixed by
the incoming activity, so here the addressing is serialized once per turn and each reply
is that envelope plus its text or card. `tests/test_lean_adapter.py` checks that the JSON
is exactly what botbuilder sends.
"""

from __future__ import annotations

from typing import Any

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import Activity

from cards.schema import attachment


def message_activity(text: str | None = None, card: dict[str, Any] | None = None) -> Activity:
    """A botbuilder message with a card, or else text: for the paths that go through it."""
    if card is not None:
        return MessageFactory.attachment(attachment(card))
    return MessageFactory.text(text or "")


class Replies:
    def __init__(self, context: TurnContext, outbound: Any) -> None:
        self.context = context
        self.outbound = outbound
        self._envelope: dict[str, Any] | None = None

    def envelope(self) -> dict[str, Any]:
        if self._envelope is None:
            activity = self.context.activity
            ref = TurnContext.get_conversation_reference(activity).serialize()
            envelope = {
                "type": "message",
                "serviceUrl": ref.get("serviceUrl"),
                "channelId": ref.get("channelId"),
                "from": ref.get("bot"),
                "conversation": ref.get("conversation"),
                "recipient": ref.get("user"),
                "locale": ref.get("locale"),
                "replyToId": ref.get("activityId"),
                "inputHint": "acceptingInput",
            }
            self._envelope = {k: v for k, v in envelope.items() if v is not None}
        return self._envelope

    async def send(self, text: str | None, card: dict[str, Any] | None) -> str | None:
        body = dict(self.envelope())
        if card is not None:
            body["attachmentLayout"] = "list"
            body["attachments"] = [attachment(card)]
        else:
            body["text"] = text or ""
        sent = await self.outbound.send(
            body["serviceUrl"], body["conversation"]["id"], body, body.get("replyToId")
        )
        return sent.get("id")
