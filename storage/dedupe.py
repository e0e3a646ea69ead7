"""Drop a redelivered activity: Teams resends when a bot is slow, networks repeat requests.

A guest's turns keep the ids they handled on the session itself (`Session.seen`), which
costs nothing extra. Turns that write to other people's sessions (an agent's reply, accept
or command) claim the activity id here instead: one create, which exactly one delivery wins.
"""

from __future__ import annotations

from storage.documents import AlreadyExists, DocumentStore
from storage.models import utcnow

CONVERSATIONS = "conversations"


async def first_delivery(
    docs: DocumentStore, conversation_id: str, activity_id: str | None
) -> bool:
    if not activity_id:
        return True
    try:
        await docs.create(
            CONVERSATIONS, conversation_id, f"seen:{activity_id}",
            {"type": "seen", "at": utcnow()},
        )
    except AlreadyExists:
        return False
    return True
