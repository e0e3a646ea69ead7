"""Typed records the store keeps. They serialize to the document bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MetadataValue = str | int | float | bool | None


SEEN_KEPT = 32
# a transcript line (and a message the bot sent) is kept this long after it was written,
# a closed session this long after it closed: the default retention (a setting)
DEFAULT_RETENTION_DAYS = 90


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
    # the transcript line (a message owed to the agent) that carries the offer card; the id
    # the channel gave the card is on that line once it was sent
    seq: int | None = None
    at: str = Field(default_factory=utcnow)
    # "open", "taken", "expired", "withdrawn"
    status: str = "open"
    # the escalation tier it was offered in (1 = the first), and the department whose
    # agent list it came from (its capacity applies): pipelines/routing/tiers.py
    tier: int = 1
    via: str | None = None


class Search(BaseModel):
    """The search for an agent, while the session waits on a connect_to_agent stage."""

    stage_key: str
    mode: str
    started_at: float
    offers: list[Offer] = Field(default_factory=list)
    # hunt: agents already tried in this round, in order
    tried: list[str] = Field(default_factory=list)
    # the skills the chat requires (skill -> lowest level), resolved when the search began
    skills: dict[str, int] = Field(default_factory=dict)
    # how many escalation tiers are offered now (1 = only the first)
    tier: int = 1
    # hunt in tiers after the first: agents tried, by tier ("2": [...])
    tier_tried: dict[str, list[str]] = Field(default_factory=dict)


class Assignment(BaseModel):
    agent_id: str
    agent_name: str
    since: str = Field(default_factory=utcnow)
    # how to reach the agent (their conversation reference), kept here so that relaying a
    # guest's message costs no extra read
    reference: dict[str, Any] | None = None
    # the escalation tier the accepting agent was offered the chat in (None: no offer)
    tier: int | None = None


class Consult(BaseModel):
    """A connected agent asks another agent privately (pipelines/routing/consult.py)."""

    # the agent who asked (the guest's agent)
    by: str
    by_name: str
    # what they asked for, as shown to them ("HR", "Bob")
    target: str
    # the department whose agents are asked: a warm transfer moves the guest there
    tenant_id: str
    offers: list[Offer] = Field(default_factory=list)
    # the consulted agent, once one accepted
    agent: Assignment | None = None
    started_at: str = Field(default_factory=utcnow)


class Owed(BaseModel):
    """A message recorded as due and not yet known to be delivered, and who delivers it.

    `owner` holds a lease until `until` (epoch seconds): nobody else sends it meanwhile. When
    the lease has run out, or its owner is known to be dead (the same instance restarted),
    recovery claims it. See pipelines/delivery.py.
    """

    seq: int
    owner: str
    until: float


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
    # every hop this chat went through, oldest first (copied forward on each transfer)
    hop_log: list[Hop] = Field(default_factory=list)
    phase: Phase = Phase.PIPELINE
    routing: Search | None = None
    agent: Assignment | None = None
    # a private consult of the connected agent with another agent
    consult: Consult | None = None
    # ids of the latest activities handled for this chat (the guest's, and agents' keys):
    # a redelivery is recognized, and handled in the same write as its effect
    seen: list[str] = Field(default_factory=list)
    undelivered: list[Undelivered] = Field(default_factory=list)
    # how to reach the guest (botbuilder ConversationReference, serialized)
    reference: dict[str, Any] = Field(default_factory=dict)
    # messages recorded as due and not yet known delivered (transcript seqs), with leases
    owed: list[Owed] = Field(default_factory=list)
    # timers this session wants: kind -> the key of the scheduled timer (storage/timers.py);
    # a timer that fires with another key (or a kind no longer wanted) does nothing
    timers: dict[str, str] = Field(default_factory=dict)
    created_at: str = Field(default_factory=utcnow)
    updated_at: str = Field(default_factory=utcnow)
    closed_at: str | None = None
    # seconds the session is kept after its last write (SessionStore sets it on every write:
    # a chat nobody touched for the retention period expires, open or closed)
    ttl: int | None = None
    # not part of the document: the ETag it was read with
    etag: str | None = Field(default=None, exclude=True)

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude_none=False)
        out["type"] = "session"
        # indexed for the delivery sweep (storage/layout.py): is anything owed (or a first
        # prompt, for a transfer's target recovery created), and when does its earliest
        # lease run out
        out["pending"] = bool(self.owed) or self.awaiting_start
        out["pending_until"] = min((o.until for o in self.owed),
                                   default=0.0 if self.awaiting_start else None)
        if out["ttl"] is None:
            del out["ttl"]
        return out

    @property
    def awaiting_start(self) -> bool:
        """A transfer's target that recovery created and nobody has entered yet: its guest
        is owed the first prompt of its pipeline, whether or not they write again."""
        return not self.started and self.state.live and bool(self.hop_log)

    def saw(self, activity_id: str | None) -> bool:
        return activity_id is not None and activity_id in self.seen

    def mark_seen(self, activity_id: str | None) -> None:
        if activity_id and activity_id not in self.seen:
            self.seen = [*self.seen, activity_id][-SEEN_KEPT:]


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Delivery(StrEnum):
    DUE = "due"
    SENT = "sent"
    # the channel refused it (a 4xx), or kept refusing it past the retry budget
    FAILED = "failed"
    # not sent on purpose: an offer for a chat already taken, an update of a card never sent,
    # or the one message that may have been in flight when a process died, when it is only
    # informational (see pipelines/delivery.py)
    SKIPPED = "skipped"


class TranscriptEntry(BaseModel):
    """One line of a chat. A line the bot says is also a message it owes someone: `to` says
    whom, `status` whether it went out. Lines meant for an agent only (offer cards, updates)
    are not part of what the guest saw (`visible` False)."""

    model_config = ConfigDict(extra="ignore")

    session_id: str
    tenant_id: str
    seq: int
    direction: Direction
    # "guest", "bot", "agent:<id>"
    sender: str
    text: str | None = None
    card: dict[str, Any] | None = None
    value: dict[str, Any] | None = None
    # in: the channel's id of the activity; out: the id the channel gave the message
    activity_id: str | None = None
    at: str = Field(default_factory=utcnow)
    # -- a message owed: to "guest" or "agent:<id>" (None: not a message, e.g. what came in)
    to: str | None = None
    # the agent's conversation reference (the guest's is on the session)
    reference: dict[str, Any] | None = None
    # the id of the activity this answers (the Bot Framework's replyToId)
    reply_to: str | None = None
    # this message replaces the card sent as line `update_of` (a Teams message update)
    update_of: int | None = None
    # "offer": withdrawn when the chat is no longer waiting for that agent
    purpose: str | None = None
    # a card with inputs or buttons: someone must act on it
    actionable: bool = False
    visible: bool = True
    # a line between agents only (a consult): never sent to the guest, nor shown as theirs
    private: bool | None = None
    # the escalation tier of the agent who accepted (the accept's own line)
    tier: int | None = None
    status: Delivery | None = None
    error: str | None = None
    ttl: int | None = None

    @property
    def doc_id(self) -> str:
        return entry_doc_id(self.session_id, self.seq)

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude_none=True)
        out["type"] = "transcript"
        out["sessionId"] = self.session_id
        return out


def entry_doc_id(session_id: str, seq: int) -> str:
    return f"{session_id}:t:{seq:08d}"


class ConversationPointer(BaseModel):
    """The conversation's pointer to its live session.

    A new session is pointed at before it is written (storage/sessions.py): a pointer to a
    session that does not exist yet is a start in progress, until `moved_at` (epoch seconds)
    is older than the lease; then the start is taken to have died and is done again.
    """

    model_config = ConfigDict(extra="ignore")

    conversation_id: str
    session_id: str
    tenant_id: str
    moved_at: float = 0.0
    # who moved it (a process, as delivery names owners): a start by a process known dead
    # is not waited for
    moved_by: str | None = None
    updated_at: str = Field(default_factory=utcnow)
    # seconds it is kept after its last move (a conversation silent that long starts afresh)
    ttl: int | None = None
    etag: str | None = Field(default=None, exclude=True)

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        out["type"] = "pointer"
        if out["ttl"] is None:
            del out["ttl"]
        return out
