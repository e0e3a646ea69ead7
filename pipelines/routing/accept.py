"""An agent accepts a chat: exactly one of several racing accepts wins, every card right.

1. Room for one more chat is checked and reserved on the agent's record in one conditional
   write (If-Match). A reservation left by an accept that died before step 2 is not counted
   once it is old and its session does not confirm it.
2. The session is written (If-Match): connected to this agent, every other open offer
   `taken` with a message that updates its card to "Taken by ...", the guest's "connected"
   card, and the accepting activity recorded as handled. A racing accept that lost reads the
   winner's state, is refused politely, and its reservation is freed.

The winner's own offer card is replaced by the answer to its Action.Execute (or, for an
Action.Submit, by an update message recorded with the rest).
"""

from __future__ import annotations

from typing import Any

import telemetry
from cards.agent_cards import accepted_card, taken_card
from pipelines.actions.base import Outcome
from pipelines.engine import Turn
from pipelines.routing.common import (
    AlreadyYours,
    Desk,
    Refused,
    chat_ref,
    check_waiting,
    connected_to,
    guest_name,
    tenant_of,
)
from pipelines.routing.search import Search
from pipelines.routing.waits import note_wait
from storage.agents import AgentRecord
from storage.models import Assignment, Direction, Offer, Phase, Session


class Accepting:
    def __init__(self, desk: Desk, search: Search) -> None:
        self.desk = desk
        self.search = search

    @telemetry.traced("routing.accept")
    async def accept(self, agent_id: str, tenant_id: str, session_id: str, *,
                     key: str | None = None, in_place: bool = True,
                     tell_agent: dict[str, Any] | None = None,
                     by: str | None = None) -> dict[str, Any]:
        """The card that replaces the agent's offer. Raises Refused.

        `in_place`: the answer replaces the pressed card (Action.Execute); otherwise the
        offer card is updated by a message recorded with the accept. `tell_agent`: a card
        sent to the agent with it (a supervisor's assignment, `by` them).
        """
        desk = self.desk
        tenant = tenant_of(desk.config, tenant_id)
        session = await desk.sessions.get(tenant.id, session_id)
        # an agent of another department is offered the chat by an escalation tier
        agent, home = tenant.agent(agent_id), tenant
        offered = open_offer(session, agent_id)
        if agent is None and offered is not None and offered.via is not None:
            home = tenant_of(desk.config, offered.via)
            agent = home.agent(agent_id)
        if agent is None:
            raise Refused(f"You're not an agent of {tenant.name}, so you can't take its chats.")
        try:
            check_waiting(session, agent_id)
        except AlreadyYours:
            assert session is not None  # a redelivered accept, or a second press
            return accepted_card(guest_name(session), tenant.name)
        assert session is not None
        record = await self._reserve(agent_id, home.capacity_of(agent), session.tenant_id,
                                     session.id)
        name = agent.name
        member = home is tenant

        async def step(turn: Turn) -> Outcome | None:
            s = turn.session
            try:
                check_waiting(s, agent_id)
            except AlreadyYours:
                return None
            mine = open_offer(s, agent_id)
            if mine is None and not member:
                raise Refused("Sorry, this chat is no longer offered to you.")
            guest = guest_name(s)
            tier = tier_of(s, agent_id)
            s.phase = Phase.CONNECTED
            s.agent = Assignment(agent_id=agent_id.casefold(), agent_name=name,
                                 reference=record.reference, tier=tier)
            s.metadata["Agent.Id"] = agent_id.casefold()
            s.metadata["Agent.Name"] = name
            turn.record(Direction.IN, f"agent:{agent_id.casefold()}", visible=False, tier=tier,
                        text=f"{name} accepted the chat" + (f" (tier {tier})" if tier else ""))
            note_wait(turn, "answered", agent_id=agent_id.casefold(), agent_name=name, by=by)
            if tell_agent is not None:
                turn.message(f"agent:{agent_id.casefold()}", card=tell_agent,
                             reference=record.reference, visible=False)
            self.search.close_offers(turn, "", status="taken", keep=agent_id.casefold(),
                                     card=taken_card(guest, tenant.name, name))
            if mine is not None:
                mine.status = "taken"
                if not in_place and mine.seq is not None:
                    turn.message(f"agent:{mine.agent_id}", update_of=mine.seq, visible=False,
                                 card=accepted_card(guest, tenant.name))
            turn.cancel_timers()
            await turn.send_card(desk.card(s, "connected_template"))
            return None

        try:
            result = await desk.engine.act(tenant.id, session_id, step, key=key)
        except Refused:
            await desk.release(agent_id, session_id)
            raise
        except BaseException:
            # a store error: free the reservation if we can (else it goes stale by itself)
            try:
                await desk.release(agent_id, session_id)
            finally:
                raise
        if result.session is not None and not connected_to(result.session, agent_id):
            await desk.release(agent_id, session_id)
            raise Refused("Sorry, this chat is no longer waiting for an agent.")
        return accepted_card(guest_name(result.session or session), tenant.name)

    async def _reserve(self, agent_id: str, capacity: int, tenant_id: str,
                       session_id: str) -> AgentRecord:
        return await self.desk.reserve(agent_id, capacity, tenant_id, session_id)


def open_offer(session: Session | None, agent_id: str) -> Offer | None:
    if session is None or session.routing is None:
        return None
    return next((o for o in session.routing.offers
                 if o.agent_id == agent_id.casefold() and o.status == "open"), None)


def tier_of(session: Session, agent_id: str) -> int | None:
    """The tier the agent was offered the chat in: their open offer's, else their latest."""
    offers = [o for o in (session.routing.offers if session.routing else [])
              if o.agent_id == agent_id.casefold()]
    mine = next((o for o in offers if o.status == "open"), offers[-1] if offers else None)
    return mine.tier if mine is not None else None


__all__ = ["Accepting", "chat_ref", "open_offer", "tier_of"]
