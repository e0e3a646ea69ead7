"""Typed records the store keeps. They serialize to the document bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MetadataValue = str | int | float | bool | None


SEEN_KEPT = 32


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SessionState(StrEnum):
    OPEN = "open"
    # the rehome is under way: the intent is recorded here, the target may not exist yet
    TRANSFERRING = "transferring"
    TRANSFERRED = "transferred"
    RESOLVED = "resolved"
    # a knowledge-base article answered the guest (`faq`): no one else had to
    DEFLECTED = "deflected"
    ENDED = "ended"
    RESTARTED = "restarted"
    HOP_LIMIT = "hop_limit"

    @property
    def live(self) -> bool:
        return self in (SessionState.OPEN, SessionState.TRANSFERRING)


class TransferIntent(BaseModel):
    """Recorded on the sending session before anything else moves, so a crash can resume."""

    to_session_id: str
    to_tenant_id: str
    to_tenant_name: str
    to_pipeline_id: str
    to_stage_key: str
    # the transfer card, already bound, sent to the guest when the target starts
    card: dict[str, Any] | None = None
    started_at: str = Field(default_factory=utcnow)


class Hop(BaseModel):
    from_session_id: str
    from_tenant_id: str
    from_tenant_name: str
    to_session_id: str
    to_tenant_id: str
    to_tenant_name: str
    at: str = Field(default_factory=utcnow)
    # who sent it: "pipeline" or "agent:<aad object id>"
    by: str = "pipeline"
    # the agent's display name when an agent sent it
    by_name: str | None = None


class Phase(StrEnum):
    """Where an open session is: in its pipeline, waiting for an agent, or with one."""

    PIPELINE = "pipeline"
    WAITING = "waiting"
    CONNECTED = "connected"


class Offer(BaseModel):
    """An offer card in an agent's chat, so it can be updated when the chat is taken."""

    agent_id: str
    agent_name: str
    activity_id: str | None = None
    at: str = Field(default_factory=utcnow)
    # "open", "taken", "expired", "withdrawn"
    status: str = "open"


class Search(BaseModel):
    """The search for an agent, while the session waits on a connect_to_agent stage."""

    stage_key: str
    mode: str
    started_at: float
    offers: list[Offer] = Field(default_factory=list)
    # hunt: agents already tried in this round, in order
    tried: list[str] = Field(default_factory=list)


class Assignment(BaseModel):
    agent_id: str
    agent_name: str
    since: str = Field(default_factory=utcnow)


class Undelivered(BaseModel):
    """A message that could not be delivered after its retries: kept for the record."""

    error: str
    text: str | None = None
    card: dict[str, Any] | None = None
    at: str = Field(default_factory=utcnow)


class Session(BaseModel):
    """One chat of one guest in one tenant."""

    model_config = ConfigDict(extra="ignore")

    id: str
    tenant_id: str
    conversation_id: str
    pipeline_id: str
    stage_key: str | None
    state: SessionState = SessionState.OPEN
    # True when the current stage has asked and waits for the guest's reply
    awaiting_input: bool = False
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    hops: int = 0
    # transcript sequence numbers already used
    transcript_count: int = 0
    transfer: TransferIntent | None = None
    # False until the engine has entered `stage_key` (a rehomed session starts this way)
    started: bool = True
    # a bound card to send before anything else (the transfer card of a rehomed session)
    pending_card: dict[str, Any] | None = None
    # every hop this chat went through, oldest first (copied forward on each transfer)
    hop_log: list[Hop] = Field(default_factory=list)
    phase: Phase = Phase.PIPELINE
    routing: Search | None = None
    agent: Assignment | None = None
    # ids of the latest activities this conversation's turns handled: a redelivery is dropped
    seen: list[str] = Field(default_factory=list)
    undelivered: list[Undelivered] = Field(default_factory=list)
    created_at: str = Field(default_factory=utcnow)
    updated_at: str = Field(default_factory=utcnow)
    closed_at: str | None = None
    # not part of the document: the ETag it was read with
    etag: str | None = Field(default=None, exclude=True)

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        out["type"] = "session"
        return out

    def saw(self, activity_id: str | None) -> bool:
        return activity_id is not None and activity_id in self.seen

    def mark_seen(self, activity_id: str | None) -> None:
        if activity_id and activity_id not in self.seen:
            self.seen = [*self.seen, activity_id][-SEEN_KEPT:]


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class TranscriptEntry(BaseModel):
    session_id: str
    tenant_id: str
    seq: int
    direction: Direction
    # "guest", "bot", later "agent:<id>"
    sender: str
    text: str | None = None
    card: dict[str, Any] | None = None
    value: dict[str, Any] | None = None
    activity_id: str | None = None
    at: str = Field(default_factory=utcnow)

    @property
    def doc_id(self) -> str:
        return f"{self.session_id}:t:{self.seq:08d}"

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        out["type"] = "transcript"
        out["sessionId"] = self.session_id
        return out


class ConversationPointer(BaseModel):
    """The conversation's pointer to its live session, and how to reach the guest."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: str
    session_id: str
    tenant_id: str
    # botbuilder ConversationReference, serialized, for proactive messages
    reference: dict[str, Any] = Field(default_factory=dict)
    updated_at: str = Field(default_factory=utcnow)
    etag: str | None = Field(default=None, exclude=True)

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        out["type"] = "pointer"
        return out
