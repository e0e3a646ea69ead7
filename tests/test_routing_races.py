"""The races of escalation and consult, through the real app on both backends (issue 15).

An agent of tier 1 and an agent of tier 2 accept the same chat at once; the consulted agent
accepts the consult as the guest leaves. Each ends with exactly one outcome, every card
right, and nobody's room held by a chat they do not have.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from app import DOCS
from storage.documents import WriteOp
from storage.layout import AGENTS as AGENTS_CONTAINER
from storage.layout import TENANT_DATA
from storage.models import Phase
from tests import teams
from tests.agent_desk import ALICE, BOB, CAROL, DAVE
from tests.harness import texts
from tests.routing_desk import ERIN, Routes, arrive, connected, running
from tests.test_races import _final_card


@pytest.fixture
async def routes(tmp_path, make_docs, connector):
    async for desk in running(tmp_path, make_docs, connector):
        yield desk


async def _press(routes: Routes, agent, sent) -> tuple[float, dict]:
    activity = teams.execute(agent.user, routes.connector.url, sent.card, {}, "Accept")
    status, body = await routes.server.post(activity)
    assert status == 200, (status, body)
    return time.monotonic(), body


async def test_a_tier_one_and_a_tier_two_agent_accept_at_once_one_wins(routes):
    bob, erin = await routes.agent(BOB), await routes.agent(ERIN)
    agents = {"Bob": bob, "Erin": erin}
    winners = set()
    for round in range(4):
        guest = await arrive(routes, "English", "Urgent", name=f"Guest {round}")
        await routes.server.fire_timers()
        routes.clock.advance(60)  # tier 2 joins: Bob's offer (tier 1) stays open
        await routes.server.fire_timers()
        offers = {name: routes.offers(chat)[-1] for name, chat in agents.items()}
        order = list(agents) if round % 2 == 0 else list(reversed(agents))
        answers = dict(zip(order, await asyncio.gather(
            *(_press(routes, agents[name], offers[name]) for name in order)), strict=True))
        chatting = [n for n, (_, body) in answers.items()
                    if "You're chatting with" in str(body["value"])]
        assert len(chatting) == 1, answers
        [winner] = chatting
        [loser] = [n for n in agents if n != winner]
        winners.add(winner)
        assert "You're chatting with" in _final_card(routes, agents[winner], offers[winner],
                                                     answers[winner])
        lost = _final_card(routes, agents[loser], offers[loser], answers[loser])
        assert f"Taken by {winner}" in lost or f"{winner} already took" in lost, lost
        assert texts(guest._new()).count(f"You're now chatting with {winner}") == 1
        session = await routes.session(guest)
        assert session.phase == Phase.CONNECTED and session.agent.agent_name == winner
        assert session.agent.tier == (1 if winner == "Bob" else 2)
        who = {"Bob": BOB, "Erin": ERIN}
        assert [c["session_id"] for c in (await routes.record(who[winner]))["chats"]] == [
            session.id]
        assert (await routes.record(who[loser]))["chats"] == []
        await agents[winner].say("end")
        assert "Bye!" in texts(guest._new())
    assert winners  # who wins is the race's; that one does, every time, is the test


class Gate:
    """Holds one write of the bot's store until an event: a race's interleaving, chosen."""

    def __init__(self, desk: Routes) -> None:
        self.docs = desk.server.app[DOCS]
        self.real_batch, self.real_replace = self.docs.batch, self.docs.replace
        self.held = 0
        self.reached = asyncio.Event()

    def hold(self, wanted, until: asyncio.Event) -> None:
        armed = [True]

        async def held(name, partition, ops) -> None:
            if armed[0] and wanted(name, partition, ops):
                armed[0] = False
                self.held += 1
                self.reached.set()
                await asyncio.wait_for(until.wait(), 10)

        async def batch(name, partition, ops):
            await held(name, partition, ops)
            return await self.real_batch(name, partition, ops)

        async def replace(name, partition, id, body, if_match):
            await held(name, partition, [WriteOp("replace", id, body, if_match)])
            return await self.real_replace(name, partition, id, body, if_match)

        self.docs.batch, self.docs.replace = batch, replace

    def release(self) -> None:
        self.docs.batch, self.docs.replace = self.real_batch, self.real_replace


def _reserving(agent: tuple[str, str]):
    """The write that reserves room on the agent's record."""
    return lambda name, partition, ops: (
        name == AGENTS_CONTAINER and partition == agent[1].casefold()
        and any(op.body and op.body.get("type") == "agent" for op in ops))


def _guest_leaving(name, partition, ops) -> bool:
    """The guest's turn's write (the line that says "cancel")."""
    return name == TENANT_DATA and any(
        op.body and op.body.get("sender") == "guest" and op.body.get("text") == "cancel"
        for op in ops)


async def test_the_consulted_agent_accepts_as_the_guest_leaves_one_outcome(routes):
    alice, carol, dave = (await routes.agent(ALICE), await routes.agent(CAROL),
                          await routes.agent(DAVE))
    seen = set()
    for round in range(6):
        guest = await arrive(routes, "English", "General", name=f"Guest {round}")
        await connected(routes, alice, guest)
        await alice.say("consult HR")
        asks = {"Carol": routes.consult_offers(carol)[-1], "Dave": routes.consult_offers(dave)[-1]}
        carol._new()
        alice._new()
        gate, landed = Gate(routes), asyncio.Event()
        ask = asks["Carol"]
        accepting = lambda ask=ask: _press(routes, carol, ask)  # noqa: E731
        if round == 0:  # the accept writes while the guest's turn is under way
            gate.hold(_guest_leaving, landed)
            leave = asyncio.create_task(guest.say("cancel"))
            await asyncio.wait_for(gate.reached.wait(), 10)
            answered = await accepting()
            landed.set()
            left = await leave
        elif round == 1:  # the guest leaves between the accept's reservation and its write
            gate.hold(_reserving(CAROL), landed)
            press = asyncio.create_task(accepting())
            await asyncio.wait_for(gate.reached.wait(), 10)
            left = await guest.say("cancel")
            landed.set()
            answered = await press
        else:  # free-running, in both orders
            first, second = accepting(), guest.say("cancel")
            if round % 2:
                left, answered = await asyncio.gather(second, first)
            else:
                answered, left = await asyncio.gather(first, second)
        gate.release()
        assert gate.held == (1 if round < 2 else 0), round
        assert "OK, you left the queue." in texts(left)
        value = str(answered[1]["value"])
        told = texts(carol._new())
        if "You're consulting with Alice" in value:  # joined, then the guest left
            seen.add("joined")
            assert told.count(f"Guest {round} left the chat, so the consult has ended.") == 1
            assert "Taken by Carol." in _final_card(routes, dave, asks["Dave"], None)
        else:  # the guest left first: the consult ended before Carol's accept landed
            seen.add("refused")
            assert "this consult has ended" in value, value
            assert "left the chat" not in told
            final = _final_card(routes, carol, asks["Carol"], answered)
            assert "consult has ended" in final, final
            assert "This consult has ended." in _final_card(routes, dave, asks["Dave"], None)
        # Alice is told once, and nobody keeps room for a chat that is over
        assert texts(alice._new()).count(f"Guest {round} left the chat") == 1
        for who in (ALICE, CAROL, DAVE):
            assert (await routes.record(who))["chats"] == [], who
        assert await routes.session(guest) is None
    assert seen == {"joined", "refused"}
