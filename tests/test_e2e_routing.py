"""Skills, escalation tiers and consults end to end: the real app, the local connector, both
backends (`make_docs`), fake time (tests/e2e_configs/routing.yaml, issue 15)."""

from __future__ import annotations

import pytest

from app import SESSIONS
from storage.models import Phase, SessionState
from tests import teams
from tests.agent_desk import ALICE, BOB, CAROL, DAVE
from tests.harness import texts
from tests.routing_desk import ERIN, SIX_KEYS, arrive, connected, running


@pytest.fixture
async def routes(tmp_path, make_docs, connector):
    async for desk in running(tmp_path, make_docs, connector):
        yield desk



# -- skills ------------------------------------------------------------------------------


async def test_exact_match_offers_only_agents_with_every_skill_at_its_level(routes):
    alice, bob, erin = (await routes.agent(ALICE), await routes.agent(BOB),
                        await routes.agent(ERIN))
    french = await arrive(routes, "French", "General")
    await routes.server.fire_timers()
    # Erin speaks French at level 1 only: the chat needs 2
    assert len(routes.offers(alice)) == 1 and routes.offers(bob) == routes.offers(erin) == []
    shown = routes.offers(alice)[0].all_text()
    assert "Skills needed" in shown and "language:fr (2)" in shown

    german = await arrive(routes, "German", "General")
    await routes.server.fire_timers()
    assert len(routes.offers(bob)) == 1 and len(routes.offers(alice)) == 1
    assert routes.offers(erin) == []

    await arrive(routes, "English", "General")  # no skill needed: everyone who is free
    await routes.server.fire_timers()
    assert [len(routes.offers(a)) for a in (alice, bob, erin)] == [2, 2, 1]

    body = await routes.press(alice, routes.offers(alice)[0])
    assert "You're chatting with Gina Guest" in str(body["value"])
    session = await routes.session(french)
    assert session.agent.agent_name == "Alice" and session.agent.tier == 1
    assert (await routes.session(german)).phase == Phase.WAITING


async def test_closest_match_ranks_by_coverage_and_hunts_down_the_ranking(routes):
    alice, bob, erin = (await routes.agent(ALICE), await routes.agent(BOB),
                        await routes.agent(ERIN))
    guest = await arrive(routes, "English", "VPN")
    # French 3 and VPN 3 wanted: Alice covers 5/6, Bob 3/6, Erin 1/6
    await routes.server.fire_timers()
    assert [len(routes.offers(a)) for a in (alice, bob, erin)] == [1, 0, 0]
    routes.clock.advance(31)
    await routes.server.fire_timers()
    assert "Not accepted in time" in routes.last_update(alice, routes.offers(alice)[0])
    assert [len(routes.offers(a)) for a in (alice, bob, erin)] == [1, 1, 0]
    routes.clock.advance(31)
    await routes.server.fire_timers()
    assert [len(routes.offers(a)) for a in (alice, bob, erin)] == [1, 1, 1]
    body = await routes.press(erin, routes.offers(erin)[0])
    assert "You're chatting with" in str(body["value"])
    session = await routes.session(guest)
    assert session.agent.agent_name == "Erin"
    assert session.metadata["Agent.Name"] == "Erin"


async def test_skills_come_from_the_guests_answer_and_stay_with_the_search(routes):
    alice = await routes.agent(ALICE)
    guest = await arrive(routes, "French", "General")
    session = await routes.session(guest)
    assert session.routing.skills == {"language:fr": 2}
    await routes.server.fire_timers()
    assert len(routes.offers(alice)) == 1


# -- escalation tiers --------------------------------------------------------------------


async def test_three_tiers_escalate_on_timers_across_restarts(routes):
    people = [await routes.agent(p) for p in (ALICE, BOB, ERIN, CAROL, DAVE)]
    _, bob, erin, carol, dave = people
    guest = await arrive(routes, "English", "Urgent")
    await routes.server.fire_timers()
    # tier 1: the VPN experts (Bob)
    assert [len(routes.offers(p)) for p in people] == [0, 1, 0, 0, 0]
    assert "tier 1 of 3: VPN experts" in routes.offers(bob)[0].all_text()
    guest._new()

    await routes.restart()
    routes.clock.advance(60)
    await routes.server.fire_timers()
    said = texts(guest._new())
    assert said.count("We've asked more people to help") == 1
    # tier 2 joins (the seniors: Erin); Bob's offer stays open
    assert [len(routes.offers(p)) for p in people] == [0, 1, 1, 0, 0]
    assert "tier 2 of 3: seniors" in routes.offers(erin)[0].all_text()
    assert routes.updates(bob) == []

    await routes.restart()
    routes.clock.advance(60)
    await routes.server.fire_timers()
    assert texts(guest._new()).count("We've asked more people to help") == 1
    # tier 3: HR's agents join too
    assert [len(routes.offers(p)) for p in people] == [0, 1, 1, 1, 1]
    assert "tier 3 of 3: HR backup" in routes.offers(carol)[0].all_text()
    assert routes.updates(bob) == routes.updates(erin) == []

    body = await routes.press(carol, routes.offers(carol)[0])
    assert "You're chatting with Gina Guest" in str(body["value"])
    assert texts(guest._new()).count("You're now chatting with Carol") == 1
    for other in (bob, erin, dave):
        assert "Taken by Carol." in routes.last_update(other, routes.offers(other)[0])
    session = await routes.session(guest)
    assert session.tenant_id == "it" and session.agent.tier == 3
    lines = await routes.server.app[SESSIONS].transcript("it", session.id)
    [accepted] = [e for e in lines if e.text and "accepted the chat" in e.text]
    assert accepted.tier == 3 and accepted.sender == "agent:" + CAROL[1] and not accepted.visible
    escalated = [e.tier for e in lines if e.to == "guest" and "asked more" in str(e.card)]
    assert escalated == [2, 3]
    # Carol's room counts the IT chat (HR's capacity applies to her)
    assert [c["session_id"] for c in (await routes.record(CAROL))["chats"]] == [session.id]
    await carol.say("Hello from HR")
    assert "Carol: \nHello from HR" in texts(guest._new())
    # nothing is left to fire: the escalation and the offers are over
    routes.clock.advance(700)
    assert await routes.server.fire_timers() == 0


async def test_max_wait_and_on_timeout_still_end_an_escalating_search(routes):
    bob = await routes.agent(BOB)
    await bob.say("status away")
    guest = await arrive(routes, "English", "Urgent")
    await routes.server.fire_timers()
    routes.clock.advance(60)
    await routes.server.fire_timers()
    routes.clock.advance(60)
    await routes.server.fire_timers()
    assert texts(guest._new()).count("We've asked more people to help") == 2
    routes.clock.advance(480)
    await routes.server.fire_timers()
    assert "Nobody from IT is free right now." in texts(guest._new())
    assert await routes.session(guest) is None
    [closed] = await routes.server.app[SESSIONS].list("it")
    assert closed.state == SessionState.ENDED and closed.stage_key == "nobody"


async def test_an_agent_of_another_department_accepts_only_through_a_tier(routes):
    bob, carol = await routes.agent(BOB), await routes.agent(CAROL)
    guest = await arrive(routes, "English", "Urgent")
    await routes.server.fire_timers()
    # Carol presses Accept on Bob's offer card (forwarded to her) before tier 3 joined
    press = teams.execute(carol.user, routes.connector.url, routes.offers(bob)[0].card, {},
                          "Accept")
    _, body = await routes.server.post(press)
    assert "You're not an agent of IT" in str(body["value"])
    assert (await routes.session(guest)).phase == Phase.WAITING
    assert (await routes.record(CAROL))["chats"] == []


# -- consult -----------------------------------------------------------------------------


async def test_consult_then_warm_transfer_the_guest_never_sees_a_private_line(routes):
    alice, carol, dave = (await routes.agent(ALICE), await routes.agent(CAROL),
                          await routes.agent(DAVE))
    guest = await arrive(routes, "English", "General", problem="My payslip is wrong")
    await connected(routes, alice, guest)
    first = await routes.session(guest)

    assert "Asked HR to consult on your chat with Gina Guest" in texts(
        await alice.say("consult HR"))
    [ask_c], [ask_d] = routes.consult_offers(carol), routes.consult_offers(dave)
    assert "My payslip is wrong" in ask_c.all_text() and "is not told" in ask_c.all_text()
    assert guest._new() == []

    body = await routes.press(carol, ask_c)
    assert "You're consulting with Alice" in str(body["value"])
    assert "Taken by Carol." in routes.last_update(dave, ask_d)
    assert "Carol joined your consult" in texts(alice._new())
    # Carol's room counts the consult while it lasts
    assert [c["consult"] for c in (await routes.record(CAROL))["chats"]] == [True]

    private_lines = ["Can you take a payroll question?", "Sure, hand them over"]
    await alice.say(private_lines[0])
    assert f"Alice (consult): \n{private_lines[0]}" in texts(carol._new())
    await carol.say(private_lines[1])
    assert f"Carol (consult): \n{private_lines[1]}" in texts(alice._new())
    await guest.say("Hello? Still there?")
    assert "Hello? Still there?" in texts(alice._new()) and carol._new() == []
    assert guest._new() == []

    handed = texts(await alice.say("transfer"))
    shown = texts(guest._new())
    assert "Alice has handed your chat to Carol" in shown
    assert "You're now chatting with Carol" in shown
    assert "Gina Guest was handed to Carol (HR)." in handed
    assert "You're chatting with Gina Guest" in texts(carol._new())

    moved = await routes.session(guest)
    assert moved.tenant_id == "hr" and moved.phase == Phase.CONNECTED
    assert moved.agent.agent_name == "Carol" and moved.stage_key == "connect"
    before = await routes.server.app[SESSIONS].get("it", first.id)
    assert before.state == SessionState.TRANSFERRED and before.agent is None
    for s in (before, moved):
        assert s.metadata["Session.TransferredFrom.SessionId"] == first.id
        assert s.metadata["Session.TransferredTo.SessionId"] == moved.id
        assert all(s.metadata.get(k) for k in SIX_KEYS), s.metadata
    assert not any(k.startswith("Session.WarmTransfer") for k in moved.metadata)
    assert moved.hop_log[-1].by == "agent:" + ALICE[1]
    # the consult's lines are in the transcript, marked private, for agents' eyes only
    lines = await routes.server.app[SESSIONS].transcript("it", first.id)
    kept = [e for e in lines if e.text in private_lines]
    assert len(kept) == 2 and all(e.private and not e.visible for e in kept)
    # Carol has the chat (no new offer), Alice is free
    assert routes.offers(carol) == []
    record = await routes.record(CAROL)
    assert [c["session_id"] for c in record["chats"]] == [moved.id]
    assert record["focus"]["session_id"] == moved.id
    assert (await routes.record(ALICE))["chats"] == []
    await carol.say("Hi Gina, Carol from HR here")
    assert "Carol: \nHi Gina, Carol from HR here" in texts(guest._new())
    await carol.say("end")
    assert "HR says goodbye, Gina Guest." in texts(guest._new())
    # every activity the guest ever received: not one private line, nor a word of the consult
    received = [s.all_text() for s in routes.connector.to(guest.user.conversation_id)]
    for said in [*private_lines, "consult"]:
        assert not any(said in text for text in received), said


async def test_a_consult_counts_against_the_consulted_agents_capacity(routes):
    alice, bob, erin = (await routes.agent(ALICE), await routes.agent(BOB),
                        await routes.agent(ERIN))
    await bob.say("status away")
    await erin.say("status away")
    guest = await arrive(routes, "English", "General")
    await connected(routes, alice, guest)
    await bob.say("status available")
    await alice.say("consult Bob")
    [ask] = routes.consult_offers(bob)
    await routes.press(bob, ask)
    await erin.say("status available")
    second = await arrive(routes, "English", "General", name="Sam Second")
    await routes.server.fire_timers()
    # IT's capacity is 1: Bob, consulting, is not offered the second chat; Erin is
    assert len(routes.offers(erin)) == 1
    assert [o for o in routes.offers(bob)] == []
    ended = texts(await alice.say("end consult"))
    assert "Alice ended the consult" in texts(bob._new())
    assert "back with Gina Guest" in ended
    assert (await routes.record(BOB))["chats"] == []
    await alice.say("Back to you")
    assert "Alice: \nBack to you" in texts(guest._new())
    assert (await routes.session(second)).phase == Phase.WAITING


async def test_the_guest_leaving_mid_consult_tells_both_agents(routes):
    alice, bob = await routes.agent(ALICE), await routes.agent(BOB)
    guest = await arrive(routes, "English", "General")
    await connected(routes, alice, guest)
    await alice.say("consult Bob")
    await routes.press(bob, routes.consult_offers(bob)[0])
    alice._new()
    bob._new()
    sent = await guest.say("cancel")
    assert "OK, you left the queue." in texts(sent)
    assert "Gina Guest left the chat" in texts(alice._new())
    assert "Gina Guest left the chat, so the consult has ended." in texts(bob._new())
    assert (await routes.record(ALICE))["chats"] == []
    assert (await routes.record(BOB))["chats"] == []
    assert "You have no open chat" in texts(await bob.say("anyone?"))


async def test_the_consulted_agent_may_leave_and_refusals_are_polite(routes):
    alice, bob = await routes.agent(ALICE), await routes.agent(BOB)
    guest = await arrive(routes, "English", "General")
    assert "You have no open chat" in texts(await alice.say("consult Bob"))
    await connected(routes, alice, guest)
    assert "Use **consult <department or agent>**" in texts(await alice.say("consult"))
    assert "You can't consult yourself" in texts(await alice.say("consult Alice"))
    assert "no department or agent called 'Zed'" in texts(await alice.say("consult Zed"))
    assert "consult someone first" in texts(await alice.say("transfer"))
    await alice.say("consult Bob")
    assert "already consulting Bob" in texts(await alice.say("consult HR"))
    await routes.press(bob, routes.consult_offers(bob)[0])
    assert "only its agent can transfer" in texts(await bob.say("transfer HR"))
    # the consulted agent's `end` leaves the consult, not the chat
    assert "You left the consult." in texts(await bob.say("end"))
    assert "Bob left the consult" in texts(alice._new())
    assert (await routes.session(guest)).agent.agent_name == "Alice"
    assert (await routes.record(BOB))["chats"] == []
