"""Agents as the store knows them: presence, capacity, open chats, how to reach them.

One record per (tenant, agent), in the tenant's partition, created from the config the
first time it is needed. Presence and the conversation reference are the person's, so
they are written to each of their tenants' records; capacity counts their chats in all.
Every change is a read-modify-write If-Match, retried on conflict.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from storage.documents import AlreadyExists, DocumentStore, PreconditionFailed
from storage.models import utcnow

TENANT_DATA = "tenant_data"


class Presence(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


class AgentRecord(BaseModel):
    tenant_id: str
    agent_id: str
    name: str
    presence: Presence = Presence.OFFLINE
    capacity: int = 2
    # session ids of the chats they are in, in this tenant
    chats: list[str] = Field(default_factory=list)
    # the chat their typed messages go to
    focus: str | None = None
    # botbuilder ConversationReference of their personal chat with the bot
    reference: dict[str, Any] | None = None
    # round-robin fairness for hunt routing
    last_offered_at: float = 0.0
    updated_at: str = Field(default_factory=utcnow)
    etag: str | None = Field(default=None, exclude=True)

    @property
    def doc_id(self) -> str:
        return agent_doc_id(self.agent_id)

    @property
    def reachable(self) -> bool:
        return bool(self.reference)

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        out["type"] = "agent"
        return out


def agent_doc_id(agent_id: str) -> str:
    return f"agent:{agent_id.casefold()}"


class AgentConflict(Exception):
    pass


class AgentStore:
    def __init__(self, docs: DocumentStore) -> None:
        self.docs = docs

    async def get(self, tenant_id: str, agent_id: str) -> AgentRecord | None:
        doc = await self.docs.read(TENANT_DATA, tenant_id, agent_doc_id(agent_id))
        if doc is None:
            return None
        return AgentRecord.model_validate(doc.body).model_copy(update={"etag": doc.etag})

    async def list(self, tenant_id: str) -> list[AgentRecord]:
        docs = await self.docs.query(TENANT_DATA, tenant_id, {"type": "agent"}, order_by="name")
        return [AgentRecord.model_validate(d.body).model_copy(update={"etag": d.etag})
                for d in docs]

    async def update(
        self,
        tenant_id: str,
        agent_id: str,
        change: Callable[[AgentRecord], AgentRecord | None],
        *,
        default: Callable[[], AgentRecord],
    ) -> AgentRecord | None:
        """Read, `change` (None: leave it), write If-Match; retried on conflict."""
        for _ in range(8):
            record = await self.get(tenant_id, agent_id)
            fresh = record is None
            if record is None:
                record = default()
            changed = change(record.model_copy(deep=True))
            if changed is None:
                return record
            changed = changed.model_copy(update={"updated_at": utcnow()})
            try:
                if fresh:
                    doc = await self.docs.create(
                        TENANT_DATA, tenant_id, changed.doc_id, changed.body()
                    )
                else:
                    doc = await self.docs.replace(
                        TENANT_DATA, tenant_id, changed.doc_id, changed.body(), record.etag
                    )
            except (PreconditionFailed, AlreadyExists):
                continue
            return changed.model_copy(update={"etag": doc.etag})
        raise AgentConflict(f"agent {agent_id} of {tenant_id} kept changing")
