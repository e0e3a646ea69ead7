"""Drop a redelivered activity: Teams resends when a bot is slow, networks repeat requests.

An activity that changes something is recorded as handled in the same write as its effect
(`Session.seen` for a chat, `AgentRecord.seen` for an agent's own record), so a redelivery
finds its effect and a failure before the write leaves it to be redone. What remains is an
agent's command that only reads (help, waiting, chats): it is claimed here, with one create
that exactly one delivery wins, before it is answered. A crash between the claim and the
answer loses that answer (the agent asks again); it is never answered twice.
"""

from __future__ import annotations

from storage.documents import AlreadyExists, DocumentStore
from storage.layout import CONVERSATIONS
from storage.models import utcnow

# Teams redelivers within minutes: a day is plenty, and the records do not pile up
SEEN_TTL = 86_400


async def first_delivery(
    docs: DocumentStore, conversation_id: str, activity_id: str | None
) -> bool:
    if not activity_id:
        return True
    try:
        await docs.create(
            CONVERSATIONS, conversation_id, f"seen:{activity_id}",
            {"type": "seen", "at": utcnow(), "ttl": SEEN_TTL},
        )
    except AlreadyExists:
        return False
    return True
