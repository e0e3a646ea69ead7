"""Races and faults around live agents, through the real app (issue 11).

Two agents accepting while the offers are still going out; an agent at capacity accepting
two chats at once; a store failure in the middle of an accept; an agent's `end` racing the
guest's message; a relay whose write failed, redelivered; a timer fired by two instances; an
install announced twice. Each ends in one consistent state, with every card right.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app import DOCS, SESSIONS
from storage.documents import StoreUnavailable
from storage.layout import AGENTS as AGENTS_CONTAINER
from storage.layout import TENANT_DATA
from storage.models import Phase
from tests import teams
from tests.agent_desk import AGENTS, ALICE, BOB, Desk, waiting_guest
from tests.harness import BotServer, Chat, FakeClock, settings_for, texts


async def _until(condition) -> Any:
    for _ in range(500):
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting")


def _final_card(desk: Desk, agent: Chat, offer, answered: tuple[float, dict] | None) -> str:
    """What the agent's offer card shows last: Teams replaces it with the answer to their
    Accept (when they pressed), and again with every later update."""
    events = [(s.at, s.all_text()) for s in desk.connector.to(agent.user.conversation_id)
              if s.how == "update" and s.activity_id == offer.activity_id]
    if answered is not None:
        at, body = answered
        value = body.get("value")
        events.append((at, str(value)))
    return max(events, key=lambda e: e[0])[1] if events else offer.all_text()


async def _accept(desk: Desk, agent: Chat, offer) -> tuple[float, dict]:
    status, body = await desk.accept(agent, offer)
    assert status == 200, (status, body)
    return time.monotonic(), body


@pytest.mark.parametrize("first", ["alice", "bob"])
async def test_accepts_that_land_while_the_offers_go_out_one_wins_every_card_right(desk, first):
    alice, bob = await desk.agent(ALICE), await desk.agent(BOB)
    agents = {"alice": alice, "bob": bob}
    for round in range(4):
        guest = await waiting_guest(desk, f"Problem number {round}")
        # the offer to the second agent is slow to reach Teams: the first accept lands while
        # the offer round is still sending
        fast, slow = (alice, bob) if round % 2 == 0 else (bob, alice)
        desk.connector.slow = {slow.user.conversation_id: 0.4}
        seen = {a: len(desk.offers(c)) for a, c in agents.items()}
        poll = asyncio.create_task(desk.server.fire_timers())
        name = "alice" if fast is alice else "bob"
        before = seen[name]
        offer_fast = await _until(lambda fast=fast, before=before: desk.offers(fast)[before:])
        pressed: dict[str, Any] = {}
        if first == name:
            pressed[name] = asyncio.create_task(_accept(desk, fast, offer_fast[0]))
        await poll
        desk.connector.slow = {}
        offers = {a: desk.offers(c)[seen[a]] for a, c in agents.items()}
        for who in ("alice", "bob"):
            if who not in pressed:
                pressed[who] = asyncio.create_task(_accept(desk, agents[who], offers[who]))
        answers = {who: await task for who, task in pressed.items()}
        chatting = [who for who in agents if "You're chatting with" in str(answers[who][1])]
        assert len(chatting) == 1, answers
        winner = chatting[0]
        loser = "bob" if winner == "alice" else "alice"
        winner_name = "Alice" if winner == "alice" else "Bob"
        # every card right, whenever the accept landed
        assert "You're chatting with" in _final_card(desk, agents[winner], offers[winner],
                                                     answers[winner])
        lost = _final_card(desk, agents[loser], offers[loser], answers[loser])
        assert f"Taken by {winner_name}" in lost or f"{winner_name} already took" in lost, lost
        said = texts(guest._new())
        assert said.count("You're now chatting with") == 1
        session = await desk.session(guest)
        assert session.phase == Phase.CONNECTED and session.agent.agent_name == winner_name
        await agents[winner].say("end")
        await guest.answer("5")


async def test_an_agent_at_capacity_accepting_two_chats_at_once_gets_one(desk):
    alice = await desk.agent(ALICE)  # IT's capacity is 1
    first, second = await waiting_guest(desk, "One"), await waiting_guest(desk, "Two")
    await desk.server.fire_timers()
    offers = desk.offers(alice)
    assert len(offers) == 2
    answers = await asyncio.gather(*(desk.accept(alice, o) for o in offers))
    won = [body for _, body in answers if "You're chatting with" in str(body["value"])]
    refused = [body for _, body in answers if "your limit" in str(body["value"])]
    assert len(won) == 1 and len(refused) == 1, answers
    record = await _agent_record(desk, ALICE[1])
    assert len(record["chats"]) == 1
    connected = [s for s in (await desk.session(first), await desk.session(second))
                 if s.phase == Phase.CONNECTED]
    assert len(connected) == 1


async def _agent_record(desk: Desk, aad: str) -> dict:
    doc = await desk.server.app[DOCS].read(AGENTS_CONTAINER, aad.casefold(), "agent")
    assert doc is not None
    return doc.body


def _fail_writes(desk: Desk, container: str, times: int) -> list[int]:
    """The store refuses the next `times` batches in `container` (the session's write)."""
    docs = desk.server.app[DOCS]
    real = docs.batch
    left = [times]

    async def batch(name, partition, ops):
        if name == container and left[0] > 0:
            left[0] -= 1
            raise StoreUnavailable("the store is down for a moment")
        return await real(name, partition, ops)

    docs.batch = batch
    return left


async def test_a_store_failure_mid_accept_leaves_no_reservation_behind(desk, caplog):
    alice = await desk.agent(ALICE)
    one = await waiting_guest(desk, "One")
    await desk.server.fire_timers()
    _fail_writes(desk, TENANT_DATA, 1)
    _, body = await desk.accept(alice, desk.offers(alice)[0])
    assert body["statusCode"] == 500  # the agent is told it failed
    record = await _agent_record(desk, ALICE[1])
    assert record["chats"] == []  # the reservation was freed
    # the same chat, pressed again: taken
    _, body = await desk.accept(alice, desk.offers(alice)[0])
    assert "You're chatting with" in str(body["value"])
    assert (await desk.session(one)).phase == Phase.CONNECTED


async def test_a_reservation_a_dead_accept_left_does_not_block_the_agent(desk):
    """An accept that died between reserving the agent and writing the session leaves a
    reservation nobody confirms: once old, it does not count against capacity."""
    alice = await desk.agent(ALICE)
    await waiting_guest(desk, "One")
    two = await waiting_guest(desk, "Two")
    await desk.server.fire_timers()
    docs = desk.server.app[DOCS]
    record = await docs.read(AGENTS_CONTAINER, ALICE[1].casefold(), "agent")
    ghost = {"tenant_id": "it", "session_id": "a-chat-that-never-connected",
             "since": desk.clock.now}
    await docs.replace(AGENTS_CONTAINER, ALICE[1].casefold(), "agent",
                       {**record.body, "chats": [ghost]}, record.etag)
    offer = next(o for o in desk.offers(alice) if "Two" in o.all_text())
    _, body = await desk.accept(alice, offer)
    assert "your limit" in str(body["value"])  # young: it may still be under way
    desk.clock.advance(61)
    _, body = await desk.accept(alice, offer)
    assert "You're chatting with" in str(body["value"])
    assert (await desk.session(two)).phase == Phase.CONNECTED


async def test_an_agents_end_racing_the_guests_message_never_strands_the_chat(desk):
    alice = await desk.agent(ALICE)
    for round in range(5):
        guest = await waiting_guest(desk, f"Round {round}")
        await desk.server.fire_timers()
        await desk.accept(alice, desk.offers(alice)[-1])
        guest._new()
        alice._new()
        to_alice, to_guest = await asyncio.gather(alice.say("end"),
                                                  guest.say(f"Are you there? {round}"))
        session = await desk.session(guest)
        assert session.phase == Phase.PIPELINE and session.agent is None
        record = await _agent_record(desk, ALICE[1])
        assert record["chats"] == [] and record["focus"] is None
        assert texts(to_alice + alice._new()).count("has ended") == 1
        assert texts(to_guest + guest._new()).count("How did Alice do") == 1
        await guest.answer("5")


async def test_a_relay_whose_write_failed_arrives_once_when_redelivered(desk):
    alice = await desk.agent(ALICE)
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    guest._new()
    activity = teams.message(alice.user, desk.connector.url, "Try a restart")
    _fail_writes(desk, TENANT_DATA, 1)
    status, _ = await desk.server.post(activity)
    assert status in (200, 201)
    assert "Try a restart" not in texts(guest._new())
    # Teams delivers it again (or the agent sends it again): it is not taken for a duplicate
    await desk.server.post(activity)
    await desk.server.post(activity)
    assert texts(guest._new()).count("Try a restart") == 1


async def test_a_timer_whose_handler_outlives_its_lease_acts_once(tmp_path, make_docs,
                                                                   connector):
    """Instance one fires "still searching" and is slow to send it; its lease runs out and
    instance two claims the same timer: it finds the timer's effect recorded and does
    nothing (it fires only the next reminder, due by then)."""
    clock = FakeClock()
    settings = dict(config_path=str(AGENTS), sends_per_conversation=1000)
    one = await BotServer(settings_for(tmp_path, **settings), docs=make_docs(),
                          clock=clock).start()
    two = await BotServer(settings_for(tmp_path, **settings), docs=make_docs(),
                          clock=clock).start()
    try:
        guest = Chat(teams.TeamsUser.make("Tim"), one, connector)
        await guest.say("hi")
        await guest.say("Nothing works")  # waiting: searching every 60 s (nobody installed)
        guest._new()
        clock.advance(60)
        conversation = guest.user.conversation_id
        release = asyncio.Event()
        connector.held = {conversation: release}
        first = asyncio.create_task(one.fire_timers())
        # one has written the reminder's effect and Teams is holding its send
        await _until(lambda: conversation not in connector.held)
        assert not first.done()
        clock.advance(61)  # its lease is gone: two claims the same timer
        await two.fire_timers()
        release.set()
        await first
        said = texts(guest._new())
        # the first reminder once (not again by two), and the next one, due by now
        assert said.count("Still looking") == 2, said
    finally:
        await one.stop()
        await two.stop()


@pytest.mark.parametrize("together", [False, True])
async def test_one_install_announced_twice_greets_once(desk, together):
    alice = desk.agents.setdefault("Alice", Chat(teams.TeamsUser(
        "Alice", ALICE[1], f"a:1conv-{ALICE[1]}"), desk.server, desk.connector))
    guest = desk.guest("Ian Install")
    events = []
    for person in (alice, guest):
        events += [teams.installation_update(person.user, desk.connector.url),
                   teams.install(person.user, desk.connector.url)]
    if together:
        await asyncio.gather(*(desk.server.post(e) for e in events))
    else:
        for event in events:
            await desk.server.post(event)
    assert texts(alice._new()).count("You're an agent of") == 1
    assert texts(guest._new()).count("What's wrong?") == 1
    sessions = [s for s in await desk.server.app[SESSIONS].list()
                if s.conversation_id == guest.user.conversation_id]
    assert len(sessions) == 1
