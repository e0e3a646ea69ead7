"""Supervisor actions through the real app, on both stores: assign, transfer, force-close,
presence, each delivered through the local connector; and an assignment racing an agent's
Accept, where exactly one wins and both are told."""

from __future__ import annotations

import asyncio

import pytest

from app import SESSIONS
from storage.agents import AgentStore, Presence
from storage.models import Phase, SessionState
from tests.agent_desk import ALICE, BOB, Desk, waiting_guest
from tests.console_support import Browser, console_config
from tests.harness import BotServer, FakeClock, settings_for, texts


@pytest.fixture
async def desk(tmp_path, make_docs, connector):
    """The agents' help desk with supervisors, in local development mode (an admin on
    loopback; sign-in has its own tests), and a console browser with its CSRF token."""
    clock = FakeClock()
    settings = settings_for(tmp_path, config_path=str(console_config(tmp_path)),
                            console_fold_interval=0, console_fold_lag=0)
    server = await BotServer(settings, docs=make_docs(), clock=clock).start()
    desk = Desk(server, connector, clock)
    desk.browser = Browser(server)
    _, me, _ = await desk.browser.get("/console/api/me")
    desk.browser.csrf = me["csrf"]
    yield desk
    await server.stop()


async def _offered(desk: Desk):
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    session = await desk.session(guest)
    assert session.phase == Phase.WAITING
    return guest, session


async def test_assign_connects_the_guest_to_the_chosen_agent(desk):
    alice, bob = await desk.agent(ALICE), await desk.agent(BOB)
    guest, session = await _offered(desk)
    assert desk.offers(alice) and desk.offers(bob)
    status, body = await desk.browser.post(f"/console/api/chats/it/{session.id}/assign",
                                           {"agent": BOB[1]})
    assert status == 200 and "chatting with Bob" in body["message"], body
    assert "You're now chatting with Bob" in texts(guest._new())
    said_to_bob = texts(bob._new())
    assert "Assigned to you by Local developer" in said_to_bob
    assert any("Taken by Bob" in s.all_text() for s in desk.updates(alice))
    record = await AgentStore(desk.server.docs).get(BOB[1])
    assert record.load() == 1
    # the chat goes on through the bot as if Bob had accepted
    await guest.say("Hello Bob?")
    assert "Hello Bob?" in texts(bob._new())
    status, page, _ = await desk.browser.get(f"/console/api/chats/it/{session.id}")
    assert any(e["what"] == "accepted" and "Bob" in e["detail"] and "supervisor" in e["detail"]
               for e in page["timeline"]), page["timeline"]


async def test_assign_is_refused_when_the_agent_cannot_take_it(desk):
    alice = await desk.agent(ALICE)
    _, session = await _offered(desk)
    status, body = await desk.browser.post(f"/console/api/chats/it/{session.id}/assign",
                                           {"agent": BOB[1]})
    assert status == 409 and "installed" in body["error"]
    status, body = await desk.browser.post(f"/console/api/chats/it/{session.id}/assign",
                                           {"agent": "bbbbbbbb-0000-0000-0000-000000000001"})
    assert status == 409 and "not an agent of IT" in body["error"]
    await alice.say("status offline")
    status, body = await desk.browser.post(f"/console/api/chats/it/{session.id}/assign",
                                           {"agent": ALICE[1]})
    assert status == 409 and "offline" in body["error"]
    status, body = await desk.browser.post(f"/console/api/chats/it/{session.id}/assign", {})
    assert status == 400


async def test_transfer_of_a_waiting_chat_withdraws_its_offers_and_moves_it(desk):
    alice = await desk.agent(ALICE)
    carol = await desk.agent(("Carol", "bbbbbbbb-0000-0000-0000-000000000001"))
    guest, session = await _offered(desk)
    status, body = await desk.browser.post(f"/console/api/chats/it/{session.id}/transfer",
                                           {"target": "hr"})
    assert status == 200, body
    said = texts(guest._new())
    assert "HR" in said
    assert any("transferred to HR by a supervisor" in s.all_text() for s in desk.updates(alice))
    source = await desk.server.app[SESSIONS].get("it", session.id)
    assert source.state == SessionState.TRANSFERRED
    assert source.hop_log[-1].by.startswith("supervisor:")
    moved = await desk.session(guest)
    assert moved.tenant_id == "hr"
    assert moved.metadata["Session.TransferredFrom.TenantId"] == "it"
    await desk.server.fire_timers()
    assert desk.offers(carol)  # HR's own search started


async def test_transfer_and_close_of_a_connected_chat_tell_and_free_the_agent(desk):
    alice = await desk.agent(ALICE)
    guest, session = await _offered(desk)
    status, body = await desk.accept(alice, desk.offers(alice)[0])
    assert status == 200
    alice._new(), guest._new()
    status, body = await desk.browser.post(f"/console/api/chats/it/{session.id}/close",
                                           {"reason": "Duplicate of ticket 42"})
    assert status == 200, body
    assert "A supervisor closed this chat: Duplicate of ticket 42" in texts(guest._new())
    assert "closed the chat with Gina Guest: Duplicate of ticket 42" in texts(alice._new())
    closed = await desk.server.app[SESSIONS].get("it", session.id)
    assert closed.state == SessionState.ENDED
    assert (await AgentStore(desk.server.docs).get(ALICE[1])).load() == 0
    status, body = await desk.browser.post(f"/console/api/chats/it/{session.id}/close",
                                           {"reason": "again"})
    assert status == 409 and "already ended" in body["error"]
    # a new chat, connected, transferred
    guest, session = await _offered(desk)
    await desk.accept(alice, desk.offers(alice)[-1])
    alice._new()
    status, body = await desk.browser.post(f"/console/api/chats/it/{session.id}/transfer",
                                           {"target": "HR"})
    assert status == 200, body
    assert "was transferred to HR by a supervisor" in texts(alice._new())
    assert (await AgentStore(desk.server.docs).get(ALICE[1])).load() == 0
    status, body = await desk.browser.post(f"/console/api/chats/hr/{session.id}/close",
                                           {"reason": "x"})
    assert status == 404  # no such chat in HR: not told apart from another department's


async def test_set_presence_from_the_console(desk):
    alice = await desk.agent(ALICE)
    guest, _ = await _offered(desk)
    await desk.accept(alice, desk.offers(alice)[0])
    guest._new()
    status, body = await desk.browser.post(f"/console/api/agents/{ALICE[1]}/presence",
                                           {"presence": "offline"})
    assert status == 200 and "Alice is now offline" in body["message"]
    record = await AgentStore(desk.server.docs).get(ALICE[1])
    assert record.presence == Presence.OFFLINE and record.load() == 0
    assert (await desk.session(guest)).phase == Phase.WAITING  # back to routing
    status, body = await desk.browser.post(f"/console/api/agents/{ALICE[1]}/presence",
                                           {"presence": "busy"})
    assert status == 409


async def test_an_assignment_racing_an_accept_one_wins_both_are_told(desk):
    alice, bob = await desk.agent(ALICE), await desk.agent(BOB)
    outcomes = set()
    for round in range(6):
        guest, session = await _offered(desk)
        offer = desk.offers(alice)[-1]
        alice._new(), bob._new(), guest._new()
        assign = desk.browser.post(f"/console/api/chats/it/{session.id}/assign",
                                   {"agent": BOB[1]})
        accept = desk.accept(alice, offer)
        if round % 2:
            (a_status, a_body), (c_status, c_body) = await asyncio.gather(assign, accept)
        else:
            (c_status, c_body), (a_status, a_body) = await asyncio.gather(accept, assign)
        assert c_status == 200
        connected = await desk.session(guest)
        assert connected.phase == Phase.CONNECTED
        winner = connected.agent.agent_id
        answer = str(c_body)
        if winner == BOB[1]:
            outcomes.add("supervisor")
            assert a_status == 200, a_body
            assert "Bob already took this chat" in answer  # the agent is told who won
            assert "Assigned to you" in texts(bob._new())
        else:
            outcomes.add("agent")
            assert winner == ALICE[1]
            assert a_status == 409 and "Alice already took this chat" in a_body["error"]
            assert "You're chatting with" in answer
        said = texts(guest._new())
        assert said.count("You're now chatting with") == 1, said
        loads = {who: (await AgentStore(desk.server.docs).get(who)).load()
                 for who in (ALICE[1], BOB[1])}
        assert sorted(loads.values()) == [0, 1], loads
        chat = alice if winner == ALICE[1] else bob
        await chat.say("end")
        await guest.say("5")
    assert outcomes, outcomes
