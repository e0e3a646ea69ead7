"""How messages reach Teams: the `Channel` delivery uses (pipelines/delivery.py).

Every message the bot sends is delivered from the store, whether it answers the guest's own
turn, goes to an agent, or comes from a timer: addressed with the conversation reference of
the person it goes to (and, for an answer, the id of the activity it answers).

`LeanChannel` writes the activity as JSON and sends it through the pooled `Outbound`;
`StockChannel` goes through botbuilder's `continue_conversation` and `send_activity` as
shipped (SWITCHBOARD_LEAN_ADAPTER=false, for comparison). tests/test_lean_adapter.py checks
that both send exactly the same activities.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import ConversationReference

from bots.outbound import Outbound
from bots.replies import message_activity
from cards.schema import attachment
from pipelines.delivery import SendFailed, SendUnknown


def envelope(reference: dict[str, Any], reply_to: str | None) -> dict[str, Any]:
    """The activity's addressing, as botbuilder's `continue_conversation` and
    `apply_conversation_reference` set it (4.17.1 leaves the locale out)."""
    out = {
        "type": "message",
        "serviceUrl": reference.get("serviceUrl"),
        "channelId": reference.get("channelId"),
        "from": reference.get("bot"),
        "conversation": reference.get("conversation"),
        "recipient": reference.get("user"),
        "replyToId": reply_to,
        "inputHint": "acceptingInput",
    }
    return {k: v for k, v in out.items() if v is not None}


class LeanChannel:
    def __init__(self, outbound: Outbound) -> None:
        self.outbound = outbound

    async def send(self, reference: dict[str, Any], text: str | None,
                   card: dict[str, Any] | None, reply_to: str | None,
                   budget: float | None) -> str | None:
        # botbuilder's proactive send answers its own continuation activity (a fresh id):
        # the same here, so both channels post the same thing to the same address
        reply_to = reply_to or str(uuid.uuid4())
        body = envelope(reference, reply_to)
        if card is not None:
            body["attachmentLayout"] = "list"
            body["attachments"] = [attachment(card)]
        else:
            body["text"] = text or ""
        conversation = body.get("conversation") or {}
        if not body.get("serviceUrl") or not conversation.get("id"):
            raise SendFailed("the conversation reference has no serviceUrl or conversation id")
        sent = await self.outbound.send(body["serviceUrl"], conversation["id"], body,
                                        reply_to, budget=budget)
        return sent.get("id")

    async def update(self, reference: dict[str, Any], activity_id: str,
                     card: dict[str, Any], budget: float | None) -> None:
        body = envelope(reference, None)
        body["attachmentLayout"] = "list"
        body["attachments"] = [attachment(card)]
        body["id"] = activity_id
        conversation = body.get("conversation") or {}
        if not body.get("serviceUrl") or not conversation.get("id"):
            raise SendFailed("the conversation reference has no serviceUrl or conversation id")
        await self.outbound.update(body["serviceUrl"], conversation["id"], activity_id, body,
                                   budget=budget)


class StockChannel:
    """botbuilder's proactive path, as shipped (errors: botbuilder's, as SendFailed)."""

    def __init__(self, adapter: Any, app_id: str) -> None:
        self.adapter = adapter
        self.app_id = app_id

    async def _run(self, reference: dict[str, Any], reply_to: str | None, logic) -> Any:
        data = copy.deepcopy(reference)
        data["activityId"] = reply_to
        ref = ConversationReference().deserialize(data)
        out: dict[str, Any] = {}

        async def callback(context: TurnContext) -> None:
            out["result"] = await logic(context)

        try:
            await self.adapter.continue_conversation(ref, callback,
                                                     bot_app_id=self.app_id or None)
        except (SendFailed, SendUnknown):
            raise
        except Exception as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}") from exc
        return out.get("result")

    async def send(self, reference: dict[str, Any], text: str | None,
                   card: dict[str, Any] | None, reply_to: str | None,
                   budget: float | None) -> str | None:
        async def logic(context: TurnContext) -> str | None:
            response = await context.send_activity(message_activity(text, card))
            return getattr(response, "id", None)

        return await self._run(reference, reply_to, logic)

    async def update(self, reference: dict[str, Any], activity_id: str,
                     card: dict[str, Any], budget: float | None) -> None:
        async def logic(context: TurnContext) -> None:
            activity = message_activity(card=card)
            activity.id = activity_id
            await context.update_activity(activity)

        await self._run(reference, None, logic)
