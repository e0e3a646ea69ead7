"""What a supervisor does to a chat from the console: assign, transfer, force-close, and set
an agent's presence.

Each one is routing's own path with the supervisor as the actor: an assignment is the
accept race (`Accepting.accept`: the agent's room reserved in one conditional write, the
session written If-Match, so an agent pressing Accept at the same moment and the
supervisor cannot both win, and the loser is told who won); transfer and close are one
step on the session (`Engine.act`: the session written If-Match with the messages they
cause, retried on the new state, the agent freed only after); presence is
`Presences.set_presence`. Nothing is sent before it is written (pipelines/delivery.py).

Whether this supervisor may act on the department is the console's check (console/auth.py);
what can be done to the chat is checked here, on the chat as it is when the step runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cards.agent_cards import accepted_card
from pipelines.actions.base import Outcome, Transfer
from pipelines.config import tenant_transfer_key
from pipelines.engine import Turn, close
from pipelines.routing import Routing
from pipelines.routing.common import Refused, guest_name, tenant_of
from pipelines.routing.waits import note_wait
from storage.agents import Presence
from storage.models import Phase, SessionState, utcnow

log = logging.getLogger("switchboard.console.actions")

MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Actor:
    """The supervisor (or admin) acting, by their Entra object id."""

    id: str
    name: str

    @property
    def tag(self) -> str:
        return f"supervisor:{self.id.casefold()}"


class Supervision:
    def __init__(self, routing: Routing) -> None:
        self.routing = routing
        self.desk = routing.desk

    async def assign(self, actor: Actor, tenant_id: str, session_id: str,
                     agent_id: str) -> str:
        """Connect a waiting chat to a chosen agent of its department. Raises Refused."""
        desk = self.desk
        tenant = tenant_of(desk.config, tenant_id)
        agent = tenant.agent(agent_id)
        if agent is None:
            raise Refused(f"That person is not an agent of {tenant.name}.")
        record = await desk.agents.get(agent_id)
        if record is None or not record.reachable:
            raise Refused(f"{agent.name} has not installed the app yet, so they can't be "
                          f"reached.")
        if record.presence == Presence.OFFLINE:
            raise Refused(f"{agent.name} is offline.")
        capacity = tenant.capacity_of(agent)
        if record.load() >= capacity and not record.has(session_id):
            raise Refused(f"{agent.name} already has {record.load()} chats, their limit.")
        session = await desk.sessions.get(tenant.id, session_id)
        if session is None:
            raise Refused("There is no such chat.")
        card = accepted_card(guest_name(session), tenant.name)
        card["body"].insert(1, {"type": "TextBlock", "wrap": True, "isSubtle": True,
                                "text": f"Assigned to you by {actor.name}."})
        await self.routing.accepting.accept(agent.aad_object_id, tenant.id, session_id,
                                            in_place=False, tell_agent=card, by=actor.tag)
        _audit(actor, "assign", tenant.id, session_id, agent=agent.aad_object_id)
        return f"{guest_name(session)} is now chatting with {agent.name}."

    async def transfer(self, actor: Actor, tenant_id: str, session_id: str,
                       target_id: str) -> str:
        """Move an open chat (waiting, connected or in its pipeline) to another department,
        which starts its primary pipeline; the guest gets its transfer card."""
        desk = self.desk
        tenant = tenant_of(desk.config, tenant_id)
        target = desk.config.find_tenant(target_id)
        if target is None or not target.enabled:
            names = ", ".join(t.name for t in desk.config.tenants if t.enabled)
            raise Refused(f"There's no department called {target_id!r}. Try one of: {names}.")
        if target.id == tenant.id:
            raise Refused(f"This chat is already in {target.name}.")
        template = desk.config.templates[tenant_transfer_key(target.id)]
        freed: list[str] = []

        async def step(turn: Turn) -> Outcome | None:
            freed.clear()  # a retried step decides afresh on what it read
            s = turn.session
            _open(s.state)
            why = f"{guest_name(s)} was transferred to {target.name} by a supervisor."
            freed.extend(_let_go(self, turn, why, "transferred", actor))
            _record(turn, actor, "transfer", target=target.id)
            return Transfer(target.id, template=template, by=actor.tag, by_name=actor.name)

        await desk.engine.act(tenant.id, session_id, step)
        for agent_id in freed:
            await desk.release(agent_id, session_id)
        _audit(actor, "transfer", tenant.id, session_id, target=target.id)
        return f"The chat was transferred to {target.name}."

    async def close(self, actor: Actor, tenant_id: str, session_id: str, reason: str) -> str:
        """End an open chat now; the guest is told why, and so is their agent."""
        reason = " ".join(reason.split())
        if not reason:
            raise Refused("Say why the chat is closed: the guest is told.")
        if len(reason) > MAX_REASON:
            raise Refused(f"Keep the reason under {MAX_REASON} characters.")
        desk = self.desk
        tenant = tenant_of(desk.config, tenant_id)
        freed: list[str] = []

        async def step(turn: Turn) -> Outcome | None:
            freed.clear()
            s = turn.session
            _open(s.state)
            why = f"A supervisor closed the chat with {guest_name(s)}: {reason}"
            freed.extend(_let_go(self, turn, why, "closed", actor))
            await turn.send_text(f"A supervisor closed this chat: {reason}")
            _record(turn, actor, "close", reason=reason)
            close(turn, SessionState.ENDED)
            return None

        await desk.engine.act(tenant.id, session_id, step)
        for agent_id in freed:
            await desk.release(agent_id, session_id)
        _audit(actor, "close", tenant.id, session_id, reason=reason)
        return "The chat was closed."

    async def set_presence(self, actor: Actor, agent_id: str, presence: str) -> str:
        """An agent's presence; offline hands their chats back to routing (as when they go
        offline themselves), available offers them the chats waiting."""
        try:
            value = Presence(presence)
        except ValueError:
            raise Refused("Presence is available, away or offline.") from None
        tenants = self.desk.config.tenants_of_agent(agent_id)
        if not tenants:
            raise Refused("That person is not an agent of any department.")
        name = next(a.name for t in tenants if (a := t.agent(agent_id)) is not None)
        await self.routing.presence.set_presence(agent_id, value)
        _audit(actor, "presence", tenants[0].id, None, agent=agent_id, presence=value.value)
        return f"{name} is now {value.value}."


def _open(state: SessionState) -> None:
    if state != SessionState.OPEN:
        raise Refused("This chat has already ended.")


def _let_go(supervision: Supervision, turn: Turn, why: str, outcome: str,
            actor: Actor) -> list[str]:
    """The chat leaves its agent (told `why`, freed after the write) or its wait (the offers
    withdrawn with `why`); the agents to free."""
    session = turn.session
    freed = []
    if session.phase == Phase.CONNECTED and session.agent is not None:
        agent = session.agent
        turn.message(f"agent:{agent.agent_id}", reference=agent.reference, visible=False,
                     text=why)
        freed.append(agent.agent_id)
    elif session.phase == Phase.WAITING:
        note_wait(turn, outcome, by=actor.tag)
        supervision.routing.search.close_offers(turn, why)
    turn.cancel_timers()
    session.phase = Phase.PIPELINE
    session.routing = None
    session.agent = None
    return freed


def _record(turn: Turn, actor: Actor, action: str, **details: Any) -> None:
    """What a supervisor did, kept with the chat (as long as its transcript)."""
    at = utcnow()
    turn.keep(f"supervision-{at}", {"type": "supervision", "at": at, "action": action,
                                    "by": actor.id, "by_name": actor.name, **details})


def _audit(actor: Actor, action: str, tenant_id: str, session_id: str | None,
           **details: Any) -> None:
    log.info("supervisor action", extra={"action": action, "by": actor.id, "tenant": tenant_id,
                                         "session": session_id, **details})
