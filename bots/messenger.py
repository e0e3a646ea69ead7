"""Proactive messages: to a guest or an agent outside their own turn.

An agent's reply goes to the guest's chat, an offer goes to each agent's chat, a timer
tells a waiting guest we're still searching: all through `continue_conversation` with the
conversation reference saved when that person last wrote to the bot.
"""

from __future__ import annotations

from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import ConversationReference

from bots.replies import message_activity


class Messenger:
    def __init__(self, adapter: Any, app_id: str) -> None:
        self.adapter = adapter
        self.app_id = app_id

    async def _run(self, reference: dict[str, Any], logic) -> Any:
        ref = ConversationReference().deserialize(reference)
        out: dict[str, Any] = {}

        async def callback(context: TurnContext) -> None:
            out["result"] = await logic(context)

        await self.adapter.continue_conversation(ref, callback, bot_app_id=self.app_id or None)
        return out.get("result")

    async def send(
        self, reference: dict[str, Any], text: str | None = None, card: dict[str, Any] | None = None
    ) -> str | None:
        """Post a message into the conversation; the id it got, for a later update."""

        async def logic(context: TurnContext) -> str | None:
            response = await context.send_activity(message_activity(text, card))
            return getattr(response, "id", None)

        return await self._run(reference, logic)

    async def update(
        self, reference: dict[str, Any], activity_id: str, card: dict[str, Any]
    ) -> None:
        """Replace a card the bot sent earlier (Teams message update)."""

        async def logic(context: TurnContext) -> None:
            activity = message_activity(card=card)
            activity.id = activity_id
            await context.update_activity(activity)

        await self._run(reference, logic)

    def sender(self, reference: dict[str, Any]):
        """An engine Sender that writes into this conversation."""

        async def send(text: str | None, card: dict[str, Any] | None) -> str | None:
            return await self.send(reference, text, card)

        return send
