"""Agents as the store knows them: presence, how to reach them, the chats they are in.

One document per person (the `agents` container, partitioned by their Entra object id),
whatever departments they serve: presence and the conversation reference are the person's,
and their capacity counts their chats in all departments, so checking and reserving room
for one more chat is one conditional write (If-Match) on one document. Records are created
from the config the first time they are needed. Every change is a read-modify-write
If-Match, retried on conflict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from storage.documents import AlreadyExists, DocumentStore, PreconditionFailed
from storage.layout import AGENTS
from storage.models import SEEN_KEPT, utcnow

DOC_ID = "agent"


class Presence(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


class ChatRef(BaseModel):
    tenant_id: str
    session_id: str
    # epoch seconds the chat was reserved (an accept that died half-way leaves a reservation
    # its session never confirms: routing checks old ones before refusing for capacity)
    since: float = 0.0


class AgentRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    agent_id: str
    name: str
    presence: Presence = Presence.OFFLINE
    # the chats they are in, in every department
    chats: list[ChatRef] = Field(default_factory=list)
    # the chat their typed messages go to
    focus: ChatRef | None = None
    # botbuilder ConversationReference of their personal chat with the bot
    reference: dict[str, Any] | None = None
    # round-robin fairness for hunt routing
    last_offered_at: float = 0.0
    # the conversation they were last greeted in: one greeting per install
    greeted: str | None = None
    # their activities already handled that changed only this record (status...)
    seen: list[str] = Field(default_factory=list)
    updated_at: str = Field(default_factory=utcnow)
    etag: str | None = Field(default=None, exclude=True)

    @property
    def reachable(self) -> bool:
        return bool(self.reference)

    def load(self) -> int:
        return len(self.chats)

    def has(self, session_id: str) -> bool:
        return any(c.session_id == session_id for c in self.chats)

    def saw(self, key: str | None) -> bool:
        return key is not None and key in self.seen

    def mark_seen(self, key: str | None) -> None:
        if key and key not in self.seen:
            self.seen = [*self.seen, key][-SEEN_KEPT:]

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        out["type"] = "agent"
        return out


def agent_key(agent_id: str) -> str:
    return agent_id.casefold()


class AgentConflict(Exception):
    pass


class AgentStore:
    def __init__(self, docs: DocumentStore) -> None:
        self.docs = docs

    async def get(self, agent_id: str) -> AgentRecord | None:
        doc = await self.docs.read(AGENTS, agent_key(agent_id), DOC_ID)
        if doc is None:
            return None
        return AgentRecord.model_validate(doc.body).model_copy(update={"etag": doc.etag})

    async def many(self, agent_ids: Iterable[str]) -> dict[str, AgentRecord]:
        """Records of these agents (point reads at once: agents are few, history is not)."""
        ids = list(dict.fromkeys(agent_key(a) for a in agent_ids))
        records = await asyncio.gather(*(self.get(a) for a in ids))
        return {a: r for a, r in zip(ids, records, strict=True) if r is not None}

    async def update(
        self,
        agent_id: str,
        change: Callable[[AgentRecord], AgentRecord | None],
        *,
        default: Callable[[], AgentRecord],
    ) -> AgentRecord:
        """Read, `change` (None: leave it; may raise to refuse), write If-Match; retried on
        conflict. Returns the record as stored."""
        key = agent_key(agent_id)
        for _ in range(8):
            record = await self.get(key)
            fresh = record is None
            if record is None:
                record = default()
            changed = change(record.model_copy(deep=True))
            if changed is None:
                return record
            changed = changed.model_copy(update={"updated_at": utcnow()})
            try:
                if fresh:
                    doc = await self.docs.create(AGENTS, key, DOC_ID, changed.body())
                else:
                    doc = await self.docs.replace(AGENTS, key, DOC_ID, changed.body(),
                                                  record.etag)
            except (PreconditionFailed, AlreadyExists):
                continue
            return changed.model_copy(update={"etag": doc.etag})
        raise AgentConflict(f"agent {agent_id} kept changing")
