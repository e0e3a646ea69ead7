"""What every part of live-agent routing shares: its dependencies, refusals, small checks."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cards.binding import bind
from pipelines.actions.connect_to_agent import ConnectToAgentStage
from pipelines.config import StageConfig, SwitchboardConfig, TenantConfig
from pipelines.engine import Engine, Turn
from storage.agents import AgentRecord, AgentStore, ChatRef
from storage.models import Phase, Session, SessionState
from storage.sessions import SessionStore
from storage.timers import TimerStore

log = logging.getLogger("switchboard.routing")

# an accept that died between reserving the agent and writing the session leaves a
# reservation nobody confirms: after this long it no longer counts against capacity
STALE_RESERVATION = 60.0


class Refused(Exception):
    """A request that cannot be done; the message is for the person who asked."""


class NothingToDo(Exception):
    """A step that finds nothing to change (a timer no longer wanted): nothing is written."""


@dataclass
class Desk:
    """Routing's dependencies, shared by its parts."""

    engine: Engine
    sessions: SessionStore
    agents: AgentStore
    timers: TimerStore
    clock: Callable[[], float] = time.time
    use_execute: bool = True
    # set by the app: run the timer poll now
    kick: Callable[[], None] = field(default=lambda: None)

    @property
    def config(self) -> SwitchboardConfig:
        return self.engine.config

    def stage_of(self, session: Session) -> StageConfig:
        tenant = self.config.tenant(session.tenant_id)
        key = session.routing.stage_key if session.routing else session.stage_key
        return tenant.pipeline(session.pipeline_id).stage(key)

    def card(self, session: Session, setting: str, **extra: Any) -> dict[str, Any]:
        stage = self.stage_of(session)
        template = self.config.template(session.tenant_id, session.pipeline_id, stage.key, setting)
        tenant = self.config.tenant(session.tenant_id)
        values = {**session.metadata, "Tenant.Id": tenant.id, "Tenant.Name": tenant.name, **extra}
        return bind(template, values)

    def default_record(
        self, agent_id: str, name: str | None = None
    ) -> Callable[[], AgentRecord]:
        def make() -> AgentRecord:
            configured = None
            for tenant in self.config.tenants_of_agent(agent_id):
                configured = configured or tenant.agent(agent_id)
            return AgentRecord(
                agent_id=agent_id.casefold(),
                name=name or (configured.name if configured else agent_id),
            )

        return make

    async def release(self, agent_id: str, session_id: str,
                      key: str | None = None) -> AgentRecord | None:
        """The agent no longer has this chat (after the session's write that says so).

        `key`: the agent's activity that ended it, recorded as handled here too, so that
        its redelivery, finding no chat, knows it was done rather than refusing it."""

        def change(r: AgentRecord) -> AgentRecord | None:
            holds = r.has(session_id) or (r.focus is not None
                                          and r.focus.session_id == session_id)
            if not holds and (key is None or r.saw(key)):
                return None
            r.mark_seen(key)
            r.chats = [c for c in r.chats if c.session_id != session_id]
            if r.focus is not None and r.focus.session_id == session_id:
                r.focus = r.chats[-1] if r.chats else None
            return r

        return await self.agents.update(agent_id, change, default=self.default_record(agent_id))

    def new_search(self, turn: Turn, stage: StageConfig) -> None:
        """The session starts (or restarts) waiting: a search and its timers."""
        from pipelines.routing.skills import required
        from pipelines.routing.tiers import ESCALATE
        from storage.models import Search

        session = turn.session
        started = self.clock()
        session.phase = Phase.WAITING
        session.agent = None
        session.routing = Search(stage_key=stage.key, mode=getattr(stage, "mode", "broadcast"),
                                 started_at=started)
        turn.schedule("offer", 0)
        turn.schedule("max_wait", getattr(stage, "max_wait", 600))
        every = getattr(stage, "searching_every", None)
        if every:
            turn.schedule("searching", every)
        if isinstance(stage, ConnectToAgentStage):
            session.routing.skills = required(stage, session.metadata)
            if len(stage.tiers) > 1:
                turn.schedule(ESCALATE, stage.tiers[0].escalate_after or 0, {"tier": 2})

    async def resolve(self, chat: ChatRef) -> Session | None:
        """The session an agent's chat is in now: a warm transfer moved it on (one hop)."""
        return await self.moved(await self.sessions.get(chat.tenant_id, chat.session_id))

    async def moved(self, session: Session | None) -> Session | None:
        """Where a session that was transferred went (itself, if it was not, or if its
        target is not written yet)."""
        if session is not None and session.state in (SessionState.TRANSFERRED,
                                                     SessionState.TRANSFERRING) and (
                session.transfer is not None):
            target = await self.sessions.get(session.transfer.to_tenant_id,
                                             session.transfer.to_session_id)
            return target or session
        return session

    async def reserve(self, agent_id: str, capacity: int, tenant_id: str, session_id: str, *,
                      consult: bool = False) -> AgentRecord:
        """Room for one more chat (or consult), checked and taken in one conditional write
        on the agent's record. Raises Refused at capacity."""
        now = self.clock()
        record = await self.agents.get(agent_id)
        stale: set[str] = set()
        if record is not None and record.load() >= capacity and not record.has(session_id):
            for chat in record.chats:
                if now - chat.since < STALE_RESERVATION:
                    continue
                other = await self.resolve(chat)
                if not holds(other, agent_id):
                    stale.add(chat.session_id)

        def take(r: AgentRecord) -> AgentRecord:
            r.chats = [c for c in r.chats if c.session_id not in stale]
            if not r.has(session_id):
                if r.load() >= capacity:
                    raise Refused(f"You already have {capacity} chats, your limit. "
                                  "End one first.")
                r.chats.append(ChatRef(tenant_id=tenant_id, session_id=session_id, since=now,
                                       consult=consult or None))
            r.focus = next(c for c in r.chats if c.session_id == session_id)
            return r

        return await self.agents.update(agent_id, take, default=self.default_record(agent_id))


def activity_key(conversation_id: str | None, activity_id: str | None) -> str | None:
    """An agent's activity, as a session records it among what it has handled."""
    if not conversation_id or not activity_id:
        return None
    digest = hashlib.sha256(f"{conversation_id}\x1f{activity_id}".encode()).hexdigest()
    return f"a:{digest[:24]}"


def check_waiting(session: Session | None, agent_id: str) -> None:
    if session is None or session.state != SessionState.OPEN:
        raise Refused("Sorry, this chat has ended.")
    if session.phase == Phase.CONNECTED and session.agent is not None:
        if session.agent.agent_id == agent_id.casefold():
            raise AlreadyYours()
        raise Refused(f"Sorry, {session.agent.agent_name} already took this chat.")
    if session.phase != Phase.WAITING:
        raise Refused("Sorry, this chat is no longer waiting for an agent.")


class AlreadyYours(Refused):
    def __init__(self) -> None:
        super().__init__("You already have this chat.")


def consulting(session: Session | None, agent_id: str) -> bool:
    """Whether the agent is the one consulted in this chat (pipelines/routing/consult.py)."""
    return (
        session is not None
        and session.state == SessionState.OPEN
        and session.consult is not None
        and session.consult.agent is not None
        and session.consult.agent.agent_id == agent_id.casefold()
    )


def holds(session: Session | None, agent_id: str) -> bool:
    """Whether the chat takes room of the agent's: theirs, or consulted on."""
    return connected_to(session, agent_id) or consulting(session, agent_id)


def connected_to(session: Session | None, agent_id: str) -> bool:
    return (
        session is not None
        and session.state == SessionState.OPEN
        and session.phase == Phase.CONNECTED
        and session.agent is not None
        and session.agent.agent_id == agent_id.casefold()
    )


def guest_name(session: Session, default: str = "the guest") -> str:
    return str(session.metadata.get("Guest.Name") or default)


def chat_ref(session: Session, since: float) -> ChatRef:
    return ChatRef(tenant_id=session.tenant_id, session_id=session.id, since=since)


def tenant_of(config: SwitchboardConfig, tenant_id: str) -> TenantConfig:
    try:
        return config.tenant(tenant_id)
    except KeyError:
        raise Refused("This chat is in a department that no longer exists.") from None
