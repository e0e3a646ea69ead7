"""Agents as the store knows them: presence, how to reach them, the chats they are in.

One document per person (the `agents` container, partitioned by their Entra object id),
whatever departments they serve: presence and the conversation reference are the person's,
and their capacity counts their chats in all departments, so checking and reserving room
for one more chat is one conditional write (If-Match) on one document. Records are created
from the config the first time they are needed. Every change is a read-modify-write
If-Match, retried on conflict.

Seats: so that an offer round reads only the agents who can take a chat now, never a whole
department, the record publishes beside itself (same partition, the same batch, so never out
of step with it) one small `seat` document per department it serves while the agent can take
a chat there (reachable, available, below that department's capacity), and one per skill
they have there. A department's, or a skill's, open seats are one indexed query, least busy
first (`open_seats`). What the agent serves and their skills come from the config
(`profile`, set by routing): a record whose copy differs is brought up to date with its next
write, and routing always checks a seat's agent against the config before offering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from storage.documents import AlreadyExists, DocumentStore, PreconditionFailed, WriteOp
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
    # a consult of another agent's chat (pipelines/routing/consult.py), not a chat of theirs
    consult: bool | None = None


class Membership(BaseModel):
    """The agent in one department, as the config says: their capacity and skills there."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    capacity: int
    skills: dict[str, int] = Field(default_factory=dict)


# what a seat's pool is called: a department's, or a skill's in a department
ANY_SKILL = "*"


def pool(tenant_id: str, skill: str = ANY_SKILL) -> str:
    return f"{tenant_id}|{skill}"


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
    # the departments they serve, their capacity and skills there (from the config)
    memberships: list[Membership] = Field(default_factory=list)
    # the seat documents published beside the record, and the load they carry
    seats: list[str] = Field(default_factory=list)
    seat_load: int | None = None
    updated_at: str = Field(default_factory=utcnow)
    etag: str | None = Field(default=None, exclude=True)

    @property
    def reachable(self) -> bool:
        return bool(self.reference)

    def load(self) -> int:
        return len(self.chats)

    def has(self, session_id: str) -> bool:
        return any(c.session_id == session_id for c in self.chats)

    def skills_in(self, tenant_id: str) -> dict[str, int]:
        return next((m.skills for m in self.memberships if m.tenant_id == tenant_id), {})

    def open_in(self, membership: Membership) -> bool:
        """Whether they can take one more chat in that department now."""
        return (self.reachable and self.presence == Presence.AVAILABLE
                and self.load() < membership.capacity)

    def wanted_seats(self) -> dict[str, dict[str, Any]]:
        """The seat documents this record publishes: id -> body."""
        out: dict[str, dict[str, Any]] = {}
        for m in self.memberships:
            if not self.open_in(m):
                continue
            for skill, level in [(ANY_SKILL, 0), *m.skills.items()]:
                out[f"seat:{m.tenant_id}:{skill}"] = {
                    "type": "seat", "pool": pool(m.tenant_id, skill), "load": self.load(),
                    "tenant": m.tenant_id, "skill": skill, "level": level,
                }
        return out

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
        # the departments an agent serves, from the config (set by routing); None: the
        # records keep what they have
        self.profile: Callable[[str], list[Membership]] | None = None

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
            profile = self.profile(key) if self.profile is not None else None
            if changed is None:
                if profile is None or profile == record.memberships:
                    return record
                changed = record.model_copy(deep=True)  # the config changed: publish it
            if profile is not None:
                changed.memberships = profile
            changed = changed.model_copy(update={"updated_at": utcnow()})
            seats = self._seat_ops(changed)
            try:
                if seats:
                    head = (WriteOp("create", DOC_ID, changed.body()) if fresh else
                            WriteOp("replace", DOC_ID, changed.body(), record.etag))
                    [doc, *_] = await self.docs.batch(AGENTS, key, [head, *seats])
                elif fresh:
                    doc = await self.docs.create(AGENTS, key, DOC_ID, changed.body())
                else:
                    doc = await self.docs.replace(AGENTS, key, DOC_ID, changed.body(),
                                                  record.etag)
            except (PreconditionFailed, AlreadyExists):
                continue
            return changed.model_copy(update={"etag": doc.etag})
        raise AgentConflict(f"agent {agent_id} kept changing")

    @staticmethod
    def _seat_ops(record: AgentRecord) -> list[WriteOp]:
        """The writes that bring the published seats in line with `record` (which is set to
        say what they are): new seats, seats whose load changed, seats no longer wanted."""
        wanted = record.wanted_seats()
        load = record.load()
        ops = [WriteOp("upsert", seat_id, body) for seat_id, body in wanted.items()
               if seat_id not in record.seats or record.seat_load != load]
        ops += [WriteOp("delete", seat_id) for seat_id in record.seats if seat_id not in wanted]
        record.seats = list(wanted)
        record.seat_load = load if wanted else None
        return ops

    async def open_seats(self, seat_pool: str, limit: int) -> list[str]:
        """The agents with an open seat in `seat_pool` (pool()), least busy first."""
        docs = await self.docs.query(AGENTS, None, {"type": "seat", "pool": seat_pool},
                                     order_by="load", limit=limit)
        return [doc.partition[0] for doc in docs]
