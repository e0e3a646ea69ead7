"""Agents coming and going: how to reach them, their presence, the chats waiting for them.

An agent who becomes reachable or available makes every chat waiting in their departments
(and in those whose escalation tiers name theirs: tiers.reaching) want an offer round now (a
step on each such session that schedules its `offer` timer), so the round itself is the same
durable one the timers run.
"""

from __future__ import annotations

from typing import Any

from pipelines.actions.base import Outcome
from pipelines.config import TenantConfig
from pipelines.engine import Turn
from pipelines.routing.chat import Chat
from pipelines.routing.common import Desk, NothingToDo, guest_name
from pipelines.routing.search import waiting_since
from pipelines.routing.tiers import reaching
from storage.agents import AgentRecord, Presence
from storage.models import Phase, SessionState


def same_place(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Whether two conversation references reach the same chat: the activity they were
    taken from differs with every message, and does not matter for reaching it."""
    if a is None:
        return False
    volatile = ("activityId",)
    return ({k: v for k, v in a.items() if k not in volatile}
            == {k: v for k, v in b.items() if k not in volatile})


class Presences:
    def __init__(self, desk: Desk, chat: Chat) -> None:
        self.desk = desk
        self.chat = chat

    async def register(self, agent_id: str, name: str | None, reference: dict[str, Any],
                       *, greet_in: str | None = None) -> bool:
        """An agent wrote to the bot: remember how to reach them (available the first time).

        `greet_in`: their conversation, on install; True when they should be greeted there
        (once per install, whichever install event comes first)."""
        greet: list[bool] = []

        def change(r: AgentRecord) -> AgentRecord | None:
            greet.clear()  # a retried update decides afresh on what it read
            update: dict[str, Any] = {}
            if not same_place(r.reference, reference):
                update["reference"] = reference
                if r.reference is None:
                    update["presence"] = Presence.AVAILABLE
            if name and r.name != name and r.etag is None:
                update["name"] = name
            if greet_in is not None and r.greeted != greet_in:
                update["greeted"] = greet_in
                greet.append(True)
            return r.model_copy(update=update) if update else None

        before = await self.desk.agents.get(agent_id)
        record = await self.desk.agents.update(agent_id, change,
                                               default=self.desk.default_record(agent_id, name))
        if (before is None or not before.reachable) and record.reachable:
            # guests may already be waiting for them
            await self.offer_waiting_chats(reaching(self.desk.config, agent_id))
        return bool(greet)

    async def set_presence(self, agent_id: str, presence: Presence, *,
                           key: str | None = None) -> str | None:
        """The agent's answer, or None when this activity was handled already."""
        duplicate: list[bool] = []

        def change(r: AgentRecord) -> AgentRecord | None:
            duplicate.clear()  # a retried update decides afresh on what it read
            if r.saw(key):
                duplicate.append(True)
                return None
            r.presence = presence
            r.mark_seen(key)
            return r

        record = await self.desk.agents.update(agent_id, change,
                                               default=self.desk.default_record(agent_id))
        if duplicate:
            return None
        if presence == Presence.OFFLINE:
            for chat in list(record.chats):
                session = await self.desk.resolve(chat)
                if session is not None:
                    await self.chat.agent_left(agent_id, session)
                else:
                    await self.desk.release(agent_id, chat.session_id)
        if presence == Presence.AVAILABLE:
            await self.offer_waiting_chats(reaching(self.desk.config, agent_id))
        return f"You're now {presence.value}."

    async def offer_waiting_chats(self, tenants: list[TenantConfig]) -> None:
        """Someone became available: every chat waiting in their tenants gets an offer round."""

        async def step(turn: Turn) -> Outcome | None:
            s = turn.session
            if s.state != SessionState.OPEN or s.phase != Phase.WAITING:
                raise NothingToDo("no longer waiting")
            if "offer" in s.timers:
                raise NothingToDo("an offer round is already due")
            turn.schedule("offer", 0)
            return None

        for tenant in tenants:
            for session in await self.desk.sessions.list(
                tenant.id, SessionState.OPEN, phase=Phase.WAITING.value
            ):
                try:
                    await self.desk.engine.act(session.tenant_id, session.id, step)
                except (NothingToDo, LookupError):
                    continue
        self.desk.kick()

    async def waiting_list(self, agent_id: str) -> list[str]:
        now = self.desk.clock()
        lines = []
        for tenant in self.desk.config.tenants_of_agent(agent_id):
            for session in await self.desk.sessions.list(
                tenant.id, SessionState.OPEN, phase=Phase.WAITING.value
            ):
                minutes = max(0, int((now - waiting_since(session, now)) // 60))
                lines.append(f"{guest_name(session, 'A guest')} ({tenant.name}), "
                             f"waiting {minutes} min")
        return lines

    async def left(self, agent_id: str) -> None:
        """The agent removed the app: they can't be reached, their chats go back to routing."""
        await self.set_presence(agent_id, Presence.OFFLINE)
