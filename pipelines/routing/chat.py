"""A connected chat from the agent's side: relay, end, transfer, the agent leaving, focus.

Each change is one step on the session (Engine.act): the session is written first, with the
messages it causes and the agent's activity recorded as handled, retried on the new state
when another instance wrote first; only then is the agent's reservation freed. So a guest's
message that races an agent's `end` cannot leave the chat connected to an agent who has no
chat, and a redelivered command changes nothing twice.
"""

from __future__ import annotations

import contextlib

import telemetry
from pipelines.actions.base import Goto, Outcome, Transfer
from pipelines.actions.connect_to_agent import ConnectToAgentStage
from pipelines.config import tenant_transfer_key
from pipelines.engine import Turn
from pipelines.routing.common import (
    Desk,
    NothingToDo,
    Refused,
    chat_ref,
    connected_to,
    consulting,
    guest_name,
    holds,
)
from pipelines.routing.consult import Consults
from pipelines.routing.search import Search
from storage.agents import AgentRecord
from storage.models import Phase, Session


class Chat:
    def __init__(self, desk: Desk, search: Search, consults: Consults | None = None) -> None:
        self.desk = desk
        self.search = search
        self.consults = consults or Consults(desk, search.roster)

    async def focused_chat(self, agent_id: str) -> Session:
        """The chat an agent's typed messages go to; Refused when there is none."""
        session, _ = await self._focus(agent_id, None)
        assert session is not None
        return session

    async def _focus(self, agent_id: str, key: str | None) -> tuple[Session | None, bool]:
        """The agent's focused chat, and whether it already handled the activity `key` (a
        redelivery: what it did is done; only the agent's release may be left, and then
        the session is returned for it)."""
        desk = self.desk
        record = await desk.agents.get(agent_id)
        if record is not None and record.saw(key):
            return None, True  # done, agent released too
        if record is not None and record.focus is not None:
            focus = record.focus
            session = await desk.sessions.get(focus.tenant_id, focus.session_id)
            if session is not None and key is not None and session.saw(key):
                return session, True
            session = await desk.moved(session)
            if holds(session, agent_id):
                assert session is not None
                if session.id != focus.session_id:  # a warm transfer moved it on
                    await self.consults.move_reservation(agent_id, focus.session_id, session,
                                                         focus.since)
                return session, False
            await desk.release(agent_id, focus.session_id)
        raise Refused("You have no open chat. Type **waiting** to see who is waiting.")

    async def my_chats(self, agent_id: str) -> list[Session]:
        record = await self.desk.agents.get(agent_id)
        out = []
        for chat in record.chats if record else []:
            session = await self.desk.resolve(chat)
            if holds(session, agent_id):
                assert session is not None
                out.append(session)
        return out

    async def switch(self, agent_id: str, session: Session) -> None:
        def focus(r: AgentRecord) -> AgentRecord:
            r.focus = next((c for c in r.chats if c.session_id == session.id),
                           chat_ref(session, self.desk.clock()))
            return r

        await self.desk.agents.update(agent_id, focus,
                                      default=self.desk.default_record(agent_id))

    @telemetry.traced("routing.relay")
    async def relay_from_agent(self, agent_id: str, text: str, *, key: str | None = None) -> None:
        session, done = await self._focus(agent_id, key)
        if done or session is None:
            return
        name = session.agent.agent_name if session.agent else "Agent"

        async def step(turn: Turn) -> Outcome | None:
            if not holds(turn.session, agent_id):
                raise Refused("That chat is no longer open.")
            if self.consults.relay(turn, agent_id, text):
                return None  # consult talk: between the two agents only
            if not connected_to(turn.session, agent_id):
                raise Refused("Your consult is over.")
            from cards.agent_cards import relay_card

            turn.message("guest", text=text, card=relay_card(name, text),
                         sender=f"agent:{agent_id.casefold()}")
            return None

        await self.desk.engine.act(session.tenant_id, session.id, step, key=key)

    @telemetry.traced("routing.end")
    async def end_chat(self, agent_id: str, *, key: str | None = None) -> None:
        """The agent ends the chat: the guest goes on with the stage's `next`. The agent's
        "ended" line is a message recorded with the rest."""
        session, done = await self._focus(agent_id, key)
        if done or session is None:  # ended already: what may be left is freeing the agent
            if session is not None:
                await self.desk.release(agent_id, session.id, key)
            return
        if consulting(session, agent_id):  # the consulted agent's `end`: they leave it
            await self.consults.end(agent_id, session, key=key)
            return
        stage = self.desk.stage_of(session)
        assert isinstance(stage, ConnectToAgentStage)

        async def step(turn: Turn) -> Outcome | None:
            s = turn.session
            if not connected_to(s, agent_id):
                raise Refused("That chat is no longer open.")
            agent = s.agent
            assert agent is not None
            turn.message(f"agent:{agent.agent_id}", reference=agent.reference, visible=False,
                         text=f"Your chat with {guest_name(s)} has ended.")
            self.consults.close(turn, f"{agent.agent_name} ended the chat with "
                                      f"{guest_name(s)}, so the consult has ended.")
            _disconnect(turn)
            return Goto(stage.next)

        await self.desk.engine.act(session.tenant_id, session.id, step, key=key)
        await self.desk.release(agent_id, session.id, key)

    @telemetry.traced("routing.transfer")
    async def transfer_chat(self, agent_id: str, target_text: str, *,
                            key: str | None = None) -> None:
        desk = self.desk
        session, done = await self._focus(agent_id, key)
        if done or session is None:
            if session is not None:
                await desk.release(agent_id, session.id, key)
            return
        if consulting(session, agent_id):
            raise Refused("You're consulting on this chat: only its agent can transfer it. "
                          "Type **end consult** to leave.")
        if not target_text.strip():  # a warm transfer, to the agent consulted
            await self._hand_over(agent_id, session, key)
            return
        target = desk.config.find_tenant(target_text)
        names = ", ".join(t.name for t in desk.config.tenants if t.enabled)
        if target is None or not target.enabled:
            raise Refused(f"There's no department called {target_text!r}. Try one of: {names}.")
        if target.id == session.tenant_id:
            raise Refused(f"This chat is already in {target.name}.")
        template = desk.config.templates[tenant_transfer_key(target.id)]

        async def step(turn: Turn) -> Outcome | None:
            s = turn.session
            if not connected_to(s, agent_id):
                raise Refused("That chat is no longer open.")
            agent = s.agent
            assert agent is not None
            turn.message(f"agent:{agent.agent_id}", reference=agent.reference, visible=False,
                         text=f"{guest_name(s)} was transferred to {target.name}.")
            self.consults.close(turn, f"{agent.agent_name} transferred {guest_name(s)} to "
                                      f"{target.name}, so the consult has ended.")
            _disconnect(turn)
            return Transfer(target.id, template=template, by=f"agent:{agent_id.casefold()}",
                            by_name=agent.agent_name)

        await desk.engine.act(session.tenant_id, session.id, step, key=key)
        await desk.release(agent_id, session.id, key)

    async def _hand_over(self, agent_id: str, session: Session, key: str | None) -> None:
        """`transfer` alone: the guest goes to the agent consulted (a warm transfer)."""

        async def step(turn: Turn) -> Outcome | None:
            if not connected_to(turn.session, agent_id):
                raise Refused("That chat is no longer open.")
            transfer = self.consults.hand_over(turn, agent_id)
            _disconnect(turn)
            return transfer

        await self.desk.engine.act(session.tenant_id, session.id, step, key=key)
        await self.desk.release(agent_id, session.id, key)

    async def consult(self, agent_id: str, target_text: str, *, key: str | None = None) -> None:
        """`consult <department or agent>` on the agent's current chat."""
        session, done = await self._focus(agent_id, key)
        if done or session is None:
            return
        if not connected_to(session, agent_id):
            raise Refused("You're consulting on this chat already: only its agent can ask "
                          "someone else.")
        await self.consults.ask(agent_id, session, target_text, key=key)

    async def end_consult(self, agent_id: str, *, key: str | None = None) -> None:
        session, done = await self._focus(agent_id, key)
        if done or session is None:
            return
        await self.consults.end(agent_id, session, key=key)

    async def agent_left(self, agent_id: str, session: Session) -> None:
        """The agent went offline or left mid-chat: tell the guest, search again."""
        desk = self.desk
        stage = desk.stage_of(session)

        if consulting(session, agent_id):
            await self.consults.consultant_left(agent_id, session)
            return

        async def step(turn: Turn) -> Outcome | None:
            s = turn.session
            if not connected_to(s, agent_id):
                raise NothingToDo("the chat moved on")
            assert s.agent is not None
            self.consults.close(turn, f"{s.agent.agent_name} left the chat with "
                                      f"{guest_name(s)}, so the consult has ended.")
            _disconnect(turn)
            await turn.send_card(desk.card(s, "agent_left_template"))
            desk.new_search(turn, stage)
            return None

        with contextlib.suppress(NothingToDo):
            await desk.engine.act(session.tenant_id, session.id, step)
        await desk.release(agent_id, session.id)


def _disconnect(turn: Turn) -> None:
    session = turn.session
    session.phase = Phase.PIPELINE
    session.agent = None
    session.routing = None
    turn.cancel_timers()
