"""Live agents end to end: a guest, two or more agents, the local connector, fake time."""

from __future__ import annotations

import asyncio

from app import SESSIONS
from storage.models import Phase, SessionState
from tests import teams
from tests.agent_desk import AGENTS, ALICE, BOB, CAROL, DAVE, Desk, waiting_guest
from tests.harness import BotServer, FakeClock, settings_for, texts


async def test_broadcast_offer_and_accept(desk):
    alice, bob = await desk.agent(ALICE), await desk.agent(BOB)
    guest = await waiting_guest(desk)
    assert await desk.server.fire_timers() == 1
    [offer_a], [offer_b] = desk.offers(alice), desk.offers(bob)
    shown = offer_a.all_text()
    assert "Gina Guest" in shown and "IT" in shown and "My screen is black" in shown
    accept = next(teams._actions(offer_a.card))
    assert accept["type"] == "Action.Execute" and accept["verb"] == "accept"

    status, body = await desk.accept(alice, offer_a)
    assert status == 200 and "You're chatting with Gina Guest" in str(body["value"])
    # Bob's offer card is updated in place
    [update] = desk.updates(bob)
    assert update.activity_id == offer_b.activity_id
    assert "Taken by Alice." in update.all_text()
    # the guest is told
    assert "You're now chatting with Alice" in texts(guest._new())
    session = await desk.session(guest)
    assert session.phase == Phase.CONNECTED and session.agent.agent_name == "Alice"


async def test_relay_in_both_directions_is_marked_and_kept(desk):
    alice = await desk.agent(ALICE)
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    guest._new()
    alice._new()

    await guest.say("It went black after the update")
    [relayed] = alice._new()
    assert relayed.all_text() == "Gina Guest: \nIt went black after the update"
    sent = await alice.say("Hold the power button for 10 seconds")
    assert sent == []
    assert "Alice: \nHold the power button for 10 seconds" in texts(guest._new())

    session = await desk.session(guest)
    lines = await desk.server.app[SESSIONS].transcript(session.tenant_id, session.id)
    said = [(e.sender, e.text) for e in lines if (e.text and "power" in e.text) or
            e.text == "It went black after the update"]
    assert ("guest", "It went black after the update") in said
    assert ("agent:" + ALICE[1], "Hold the power button for 10 seconds") in said


async def test_two_agents_accepting_at_once_exactly_one_wins(desk):
    alice, bob = await desk.agent(ALICE), await desk.agent(BOB)
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    results = await asyncio.gather(
        desk.accept(alice, desk.offers(alice)[0]), desk.accept(bob, desk.offers(bob)[0])
    )
    bodies = [str(body["value"]) for _, body in results]
    winners = [b for b in bodies if "You're chatting with" in b]
    losers = [b for b in bodies if "already took this chat" in b]
    assert len(winners) == 1 and len(losers) == 1, bodies
    session = await desk.session(guest)
    winner = "Alice" if "You're chatting" in bodies[0] else "Bob"
    assert session.agent.agent_name == winner
    assert f"Sorry, {winner} already took this chat." in losers[0]
    assert texts(guest._new()).count("You're now chatting with") == 1


async def test_hunt_moves_to_the_next_agent_after_the_accept_timeout(desk):
    carol, dave = await desk.agent(CAROL), await desk.agent(DAVE)
    alice = await desk.agent(ALICE)
    guest = await waiting_guest(desk, "Question about my leave")
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    sent = await alice.say("transfer HR")
    assert "was transferred to HR" in texts(sent)
    await desk.server.fire_timers()
    assert len(desk.offers(carol)) == 1 and desk.offers(dave) == []  # one at a time

    desk.clock.advance(31)
    await desk.server.fire_timers()
    [expired] = desk.updates(carol)
    assert "Not accepted in time" in expired.all_text()
    assert len(desk.offers(dave)) == 1
    _, body = await desk.accept(dave, desk.offers(dave)[0])
    assert "You're chatting with Gina Guest" in str(body["value"])
    assert (await desk.session(guest)).agent.agent_name == "Dave"


async def test_no_agent_available_leads_to_the_timeout_stage(desk):
    await desk.agent(ALICE)
    await desk.agents["Alice"].say("status offline")
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    assert desk.offers(desk.agents["Alice"]) == []
    desk.clock.advance(60)
    await desk.server.fire_timers()
    assert "Still looking for someone from IT" in texts(guest._new())
    desk.clock.advance(241)
    await desk.server.fire_timers()
    assert "Nobody from IT is free right now" in texts(guest._new())
    assert await desk.session(guest) is None
    [closed] = await desk.server.app[SESSIONS].list("it")
    assert closed.state == SessionState.ENDED and closed.stage_key == "nobody"


async def test_an_agent_who_never_installed_is_never_offered_and_is_logged(desk, caplog):
    alice = await desk.agent(ALICE)
    bob = await desk.agent(BOB, install=False)
    await waiting_guest(desk)
    caplog.set_level("WARNING")
    await desk.server.fire_timers()
    assert len(desk.offers(alice)) == 1 and desk.offers(bob) == []
    warned = [r for r in caplog.records if "have not installed the app" in r.getMessage()]
    assert warned and warned[0].agent_name == "Bob"


async def test_agent_transfers_a_live_chat_and_the_next_agent_sees_the_history(desk):
    alice, carol = await desk.agent(ALICE), await desk.agent(CAROL)
    guest = await waiting_guest(desk, "Payroll shows the wrong bank account")
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    await guest.say("It changed last month")
    guest._new()
    await alice.say("transfer hr")
    shown = texts(guest._new())
    assert "Moving you from IT to HR." in shown
    assert "Connecting you with someone from HR" in shown

    await desk.server.fire_timers()
    [offer] = desk.offers(carol)
    view = offer.all_text()
    assert "Transferred from" in view and "IT by Alice" in view
    assert "Payroll shows the wrong bank account" in view and "It changed last month" in view
    _, body = await desk.accept(carol, offer)
    assert "You're chatting with Gina Guest" in str(body["value"])
    session = await desk.session(guest)
    assert session.tenant_id == "hr" and session.agent.agent_name == "Carol"
    assert session.hop_log[-1].by == "agent:" + ALICE[1] and session.hop_log[-1].by_name == "Alice"
    # Alice is free again
    assert "You have no open chat" in texts(await alice.say("end"))


async def test_capacity_is_respected(desk):
    alice, bob = await desk.agent(ALICE), await desk.agent(BOB)  # capacity 1 each
    first = await waiting_guest(desk)
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    second = await waiting_guest(desk, "Printer jam")
    await desk.server.fire_timers()
    # Alice is full: only Bob gets the second offer
    assert len(desk.offers(alice)) == 1 and len(desk.offers(bob)) == 2
    # Alice pressing Accept on the second chat (a card forwarded to her) is refused
    second_offer = desk.offers(bob)[1].card
    press = teams.execute(alice.user, desk.connector.url, second_offer, {}, "Accept")
    _, body = await desk.server.post(press)
    assert "You already have 1 chats, your limit" in str(body["value"])
    await desk.accept(bob, desk.offers(bob)[1])
    assert (await desk.session(second)).agent.agent_name == "Bob"
    assert (await desk.session(first)).agent.agent_name == "Alice"


async def test_guest_cancels_while_waiting(desk):
    alice = await desk.agent(ALICE)
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    sent = await guest.press("Stop waiting")
    assert "OK, you left the queue." in texts(sent)
    [update] = desk.updates(alice)
    assert "The guest stopped waiting." in update.all_text()
    _, body = await desk.accept(alice, desk.offers(alice)[0])
    assert "this chat has ended" in str(body["value"])
    # no timer is left to bother the guest
    desk.clock.advance(1000)
    assert await desk.server.fire_timers() == 0


async def test_agent_ends_the_chat_and_the_guest_goes_on_to_feedback(desk):
    alice = await desk.agent(ALICE)
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    guest._new()
    sent = await alice.say("end")
    assert "Your chat with Gina Guest has ended." in texts(sent)
    assert "How did Alice do, 1 to 5?" in texts(guest._new())
    sent = await guest.say("5")
    assert "Thanks for the feedback!" in texts(sent)
    [done] = await desk.server.app[SESSIONS].list("it")
    assert done.state == SessionState.RESOLVED and done.metadata["Answers.Rating"] == "5"


async def test_agent_going_offline_mid_chat_sends_the_chat_back_to_routing(desk):
    alice, bob = await desk.agent(ALICE), await desk.agent(BOB)
    await bob.say("status away")
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    guest._new()
    await bob.say("status available")
    sent = await alice.say("status offline")
    assert "You're now offline." in texts(sent)
    assert "Alice had to leave the chat" in texts(guest._new())
    session = await desk.session(guest)
    assert session.phase == Phase.WAITING and session.agent is None
    await desk.server.fire_timers()
    assert len(desk.offers(bob)) == 1


async def test_agent_commands_help_waiting_and_status(desk):
    alice = await desk.agent(ALICE)
    await alice.say("status away")
    await waiting_guest(desk)
    sent = await alice.say("waiting")
    assert "Gina Guest (IT), waiting 0 min" in texts(sent)
    assert "transfer <department>" in texts(await alice.say("help"))
    assert "Use **status available**" in texts(await alice.say("status sleepy"))
    assert "You have no open chat" in texts(await alice.say("transfer Sales"))


async def test_a_guest_cannot_accept_an_offer(desk):
    alice = await desk.agent(ALICE)
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    offer = desk.offers(alice)[0]
    activity = teams.execute(guest.user, desk.connector.url, offer.card, {}, "Accept")
    status, body = await desk.server.post(activity)
    assert status == 200 and "Only the agents of a department" in body["value"]
    assert (await desk.session(guest)).phase == Phase.WAITING


async def test_a_timer_fires_once_with_two_instances(tmp_path, make_docs, connector):
    clock = FakeClock()
    one = await BotServer(settings_for(tmp_path, config_path=str(AGENTS)), docs=make_docs(),
                          clock=clock).start()
    two = await BotServer(settings_for(tmp_path, config_path=str(AGENTS)), docs=make_docs(),
                          clock=clock).start()
    try:
        desk = Desk(one, connector, clock)
        alice = await desk.agent(ALICE)
        guest = await waiting_guest(desk)
        fired = await asyncio.gather(one.fire_timers(), two.fire_timers())
        assert sum(fired) == 1
        assert len(desk.offers(alice)) == 1
        clock.advance(60)
        await asyncio.gather(one.fire_timers(), two.fire_timers())
        assert texts(guest._new()).count("Still looking for someone") == 1
    finally:
        await one.stop()
        await two.stop()


async def test_an_old_stop_waiting_button_does_not_cancel_a_later_wait(desk):
    await desk.agent(ALICE)
    guest = await waiting_guest(desk)
    old_card = guest.last_card()
    await guest.press("Stop waiting")
    await guest.say("hi")  # a new request
    await guest.say("Printer on fire")
    assert (await desk.session(guest)).phase == Phase.WAITING
    sent = await guest.send(teams.submit(guest.user, desk.connector.url, old_card, {}))
    assert "no longer does anything" in texts(sent)
    assert (await desk.session(guest)).phase == Phase.WAITING


async def test_an_agent_who_installs_while_a_guest_waits_gets_the_offer(desk):
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()  # nobody to offer it to yet
    alice = await desk.agent(ALICE)  # opens the app for the first time
    await desk.server.fire_timers()
    assert len(desk.offers(alice)) == 1
    assert (await desk.session(guest)).phase == Phase.WAITING


async def test_the_offer_shows_card_answers_in_words(desk, tmp_path):
    alice = await desk.agent(ALICE)
    guest = desk.guest()
    await guest.say("hi")
    # the guest answers with a card instead of typing
    question = teams.message(guest.user, desk.connector.url, value={
        "switchboard": {"verb": "answer"}, "answer": "Monitor flickers"})
    await guest.send(question)
    await desk.server.fire_timers()
    [offer] = desk.offers(alice)
    shown = offer.all_text()
    assert "Gina Guest: " in shown and "Monitor flickers" in shown
    assert "(card response)" not in shown
    assert "Problem" in shown  # Answers.Problem, as words
