"""Authorization: every card action names its session and verb, and the server checks them.

A guest can act only on their own session's current stage, and never as an agent; an agent
can take only the chats of their own departments, and only while they wait; a card action
whose Switchboard data was altered (another guest's session, an unknown verb, a choice or
stage that isn't the card's, values that aren't short strings) is refused politely and
changes nothing in the store. All through the HTTP endpoint, on both stores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from app import SESSIONS
from bots.guest_input import AGENT_VERBS, GUEST_VERBS
from storage.models import Phase, SessionState
from tests import teams
from tests.agent_desk import ALICE, BOB, CAROL, waiting_guest
from tests.harness import BotServer, Chat, settings_for, texts

ROOT = Path(__file__).resolve().parents[1]
REFUSED = "that button's data isn't valid"
STALE = "That card is from an earlier step"


# -- agents' offers (tests/e2e_configs/agents.yaml) ----------------------------------------


def submit_accept(chat: Chat, connector, offer_card: dict[str, Any],
                  tamper=None) -> dict[str, Any]:
    """Accept pressed as an Action.Submit: a message whose value is the button's data."""
    data = json.loads(json.dumps(teams.find_action(offer_card, "Accept")["data"]))
    if tamper:
        tamper(data["switchboard"])
    return teams.message(chat.user, connector.url, value=data)


def execute_accept(chat: Chat, connector, offer_card: dict[str, Any], tamper=None):
    activity = json.loads(json.dumps(
        teams.execute(chat.user, connector.url, offer_card, {}, "Accept")))
    if tamper:
        tamper(activity["value"]["action"]["data"]["switchboard"])
    return activity


async def test_a_guest_cannot_accept_an_offer_by_submit_or_execute(desk):
    alice = await desk.agent(ALICE)
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    offer = desk.offers(alice)[0].card
    guest._new()
    sent = await guest.send(submit_accept(guest, desk.connector, offer))
    assert "Only the agents of a department can accept chats." in texts(sent)
    status, body = await desk.server.post(execute_accept(guest, desk.connector, offer))
    assert status == 200 and "Only the agents of a department" in body["value"]
    session = await desk.session(guest)
    assert session.phase == Phase.WAITING and session.agent is None
    # the offer still works for the agent it was made to
    _, body = await desk.accept(alice, desk.offers(alice)[0])
    assert "You're chatting with Gina Guest" in str(body["value"])


async def test_agent_commands_typed_by_a_guest_are_just_text(desk):
    alice = await desk.agent(ALICE)
    await desk.agent(CAROL)
    guest = await waiting_guest(desk)
    # waiting: "end" and "transfer hr" are not commands for a guest
    for text in ("end", "transfer hr", "waiting", "status offline"):
        sent = await guest.say(text)
        assert "You're still in the queue" in texts(sent)
    session = await desk.session(guest)
    assert session.tenant_id == "it" and session.phase == Phase.WAITING
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    guest._new()
    alice._new()
    # connected: they go to the agent as the guest's words, and nothing ends or moves
    for text in ("end", "transfer hr"):
        assert await guest.say(text) == []
        [relayed] = alice._new()
        assert relayed.all_text() == f"Gina Guest: \n{text}"
    session = await desk.session(guest)
    assert session.tenant_id == "it" and session.phase == Phase.CONNECTED
    assert session.agent.agent_name == "Alice" and session.state == SessionState.OPEN
    assert await desk.server.app[SESSIONS].list("hr") == []


async def test_an_agent_of_another_department_cannot_accept(desk):
    alice, carol = await desk.agent(ALICE), await desk.agent(CAROL)
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    offer = desk.offers(alice)[0].card  # forwarded to Carol, who is in HR
    status, body = await desk.server.post(execute_accept(carol, desk.connector, offer))
    assert status == 200 and "You're not an agent of IT" in str(body["value"])
    sent = await carol.send(submit_accept(carol, desk.connector, offer))
    assert "You're not an agent of IT" in texts(sent)
    # naming her own department instead does not help: the chat is not there
    status, body = await desk.server.post(execute_accept(
        carol, desk.connector, offer, tamper=lambda d: d.update(tenant="hr")))
    assert status == 200 and "this chat has ended" in str(body["value"])
    session = await desk.session(guest)
    assert session.phase == Phase.WAITING and session.agent is None
    assert session.tenant_id == "it"
    _, body = await desk.accept(alice, desk.offers(alice)[0])
    assert "You're chatting with Gina Guest" in str(body["value"])


async def test_an_offer_for_a_chat_taken_or_ended_is_refused_politely(desk):
    alice, bob = await desk.agent(ALICE), await desk.agent(BOB)
    taken = await waiting_guest(desk)
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    status, body = await desk.server.post(
        execute_accept(bob, desk.connector, desk.offers(bob)[0].card))
    assert status == 200 and "Sorry, Alice already took this chat." in str(body["value"])
    sent = await bob.send(submit_accept(bob, desk.connector, desk.offers(bob)[0].card))
    assert "Sorry, Alice already took this chat." in texts(sent)
    assert (await desk.session(taken)).agent.agent_name == "Alice"

    ended = await waiting_guest(desk, "Printer jam")
    await desk.server.fire_timers()
    offer = desk.offers(bob)[-1].card
    await ended.press("Stop waiting")
    status, body = await desk.server.post(execute_accept(bob, desk.connector, offer))
    assert status == 200 and "Sorry, this chat has ended." in str(body["value"])
    assert await desk.session(ended) is None
    [closed] = [s for s in await desk.server.app[SESSIONS].list("it")
                if s.conversation_id == ended.user.conversation_id]
    assert closed.agent is None and closed.state == SessionState.ENDED


@pytest.mark.parametrize("tamper", [
    lambda d: d.update(session=12345),
    lambda d: d.update(session="s" * 5000),
    lambda d: d.update(tenant=["it"]),
    lambda d: d.update(verb="take"),
    lambda d: d.pop("verb"),
], ids=["session-number", "session-huge", "tenant-list", "verb-unknown", "verb-missing"])
async def test_an_agent_offer_with_altered_data_is_refused(desk, tamper):
    alice = await desk.agent(ALICE)
    guest = await waiting_guest(desk)
    await desk.server.fire_timers()
    offer = desk.offers(alice)[0].card
    status, body = await desk.server.post(
        execute_accept(alice, desk.connector, offer, tamper=tamper))
    assert status == 200 and REFUSED in body["value"]
    sent = await alice.send(submit_accept(alice, desk.connector, offer, tamper=tamper))
    assert REFUSED in texts(sent)
    session = await desk.session(guest)
    assert session.phase == Phase.WAITING and session.agent is None


# -- guests' cards ------------------------------------------------------------------------

CARDS = {
    "primary_tenant": "desk",
    "tenants": [{
        "id": "desk", "name": "Desk", "primary_pipeline": "main",
        "pipelines": [{"id": "main", "stages": [
            {"key": "ask", "action": "question", "prompt": "What's wrong?",
             "store_as": "Answers.Problem", "next": "pick"},
            {"key": "pick", "action": "menu", "prompt": "Who should look at it?",
             "store_as": "Answers.Team",
             "choices": [{"id": "network", "title": "Network", "next": "thanks"},
                         {"id": "laptops", "title": "Laptops", "next": "thanks"}]},
            {"key": "thanks", "action": "end", "template": {
                "type": "AdaptiveCard", "version": "1.5",
                "body": [{"type": "TextBlock", "text": "Thanks, ${Answers.Team} has it."}]}},
        ]}],
    }],
}


@pytest.fixture(params=[False, True], ids=["submit", "execute"])
async def cards_bot(request, tmp_path, make_docs):
    config = tmp_path / "cards.json"
    config.write_text(json.dumps(CARDS))
    server = await BotServer(
        settings_for(tmp_path, config_path=str(config), use_execute=request.param),
        docs=make_docs(),
    ).start()
    yield server
    await server.stop()


async def _snapshot(server: BotServer, chat: Chat) -> tuple:
    session = await server.app[SESSIONS].live(chat.user.conversation_id)
    return (session.id, session.tenant_id, session.stage_key, session.state, session.phase,
            session.awaiting_input, dict(session.metadata), session.transcript_count)


def _press(chat: Chat, card: dict[str, Any], button: str | None, inputs: dict[str, Any],
           tamper) -> dict[str, Any]:
    """The activity Teams sends for `button`, with its Switchboard data altered."""
    action = teams.find_action(card, button)
    if action["type"] == "Action.Execute":
        activity = teams.execute(chat.user, chat.connector.url, card, inputs, button)
        data = activity["value"]["action"]["data"]
    else:
        activity = teams.submit(chat.user, chat.connector.url, card, inputs, button)
        data = activity["value"]
    data["switchboard"] = json.loads(json.dumps(data["switchboard"]))
    result = tamper(data["switchboard"], data)
    if result is not None:
        data["switchboard"] = result
    return activity


async def _said(chat: Chat, activity: dict[str, Any]) -> str:
    """What the guest was told: the new messages, or the invoke's answer."""
    sent = await chat.send(activity)
    said = texts(sent)
    if activity["type"] == "invoke":
        said += "\n" + json.dumps(chat.last_body)
    return said


TAMPERED = {
    # (how the Switchboard data is altered, what the guest is told, whether the edge refuses
    # it before any session is read)
    "unknown verb": (lambda d, _: d.update(verb="delete"), REFUSED, True),
    "agent verb": (lambda d, _: d.update(verb="accept"), "Only the agents", True),
    "verb missing": (lambda d, _: d.pop("verb"), REFUSED, True),
    "verb not a string": (lambda d, _: d.update(verb={"x": 1}), REFUSED, True),
    "session a number": (lambda d, _: d.update(session=12345), REFUSED, True),
    "session null": (lambda d, _: d.update(session=None), REFUSED, True),
    "session empty": (lambda d, _: d.update(session=""), REFUSED, True),
    "stage a list": (lambda d, _: d.update(stage=["pick"]), REFUSED, True),
    "choice a number": (lambda d, _: d.update(choice=1), REFUSED, True),
    "huge session": (lambda d, _: d.update(session="s" * 100_000), REFUSED, True),
    "huge choice": (lambda d, _: d.update(choice="c" * 5_000), REFUSED, True),
    "data a string": (lambda d, _: "pick", REFUSED, True),
    "data a list": (lambda d, _: [d], REFUSED, True),
    "stage of another stage": (lambda d, _: d.update(stage="ask"), STALE, False),
    "stage that doesn't exist": (lambda d, _: d.update(stage="nope"), STALE, False),
    "choice that doesn't exist": (lambda d, _: d.update(choice="payroll"),
                                  "Please pick one of the options", False),
}


@pytest.mark.parametrize("case", list(TAMPERED))
async def test_a_guests_altered_card_is_refused_and_changes_nothing(cards_bot, connector, case):
    tamper, told, at_the_edge = TAMPERED[case]
    ada = Chat(teams.TeamsUser.make("Ada"), cards_bot, connector)
    await ada.say("hi")
    await ada.answer("The VPN drops every hour")
    menu = ada.last_card()
    before = await _snapshot(cards_bot, ada)
    sessions = len(await cards_bot.app[SESSIONS].list())

    said = await _said(ada, _press(ada, menu, "Network", {}, tamper))
    assert told in said, said
    after = await _snapshot(cards_bot, ada)
    if at_the_edge:  # refused before the session was read: not even the transcript moved
        assert after == before
    else:
        assert after[:-1] == before[:-1]
    assert len(await cards_bot.app[SESSIONS].list()) == sessions
    # the real button still works
    said = await _said(ada, _press(ada, menu, "Laptops", {}, lambda d, _: None))
    assert "Thanks, Laptops has it." in said


async def test_another_guests_session_in_a_card_changes_neither_guest(cards_bot, connector):
    ada = Chat(teams.TeamsUser.make("Ada"), cards_bot, connector)
    bob = Chat(teams.TeamsUser.make("Bob"), cards_bot, connector)
    await ada.say("hi")
    await bob.say("hello")
    bobs_question = bob.last_card()
    bobs = await cards_bot.app[SESSIONS].live(bob.user.conversation_id)
    await ada.answer("My laptop is slow")
    ada_before, bob_before = await _snapshot(cards_bot, ada), await _snapshot(cards_bot, bob)

    # Ada answers Bob's question card: his session id and stage key, her conversation
    forged = _press(ada, bobs_question, None, {"answer": "Bob quits"}, lambda d, _: None)
    assert "Bob quits" in json.dumps(forged) and bobs.id in json.dumps(forged)
    said = await _said(ada, forged)
    assert STALE in said
    # Ada's menu card, pointed at Bob's session and stage
    forged = _press(ada, ada.last_card(), "Network", {},
                    lambda d, _: d.update(session=bobs.id, stage="ask"))
    assert STALE in await _said(ada, forged)

    ada_after, bob_after = await _snapshot(cards_bot, ada), await _snapshot(cards_bot, bob)
    assert ada_after[:-1] == ada_before[:-1]
    assert bob_after == bob_before
    assert "Answers.Problem" not in bob_after[6]
    assert "Bob" not in texts(connector.to(ada.user.conversation_id)).replace("Bob quits", "")
    assert texts(connector.to(bob.user.conversation_id)).count("What's wrong?") == 1


async def test_a_card_of_a_closed_session_gets_the_earlier_step_answer_and_changes_nothing(
    cards_bot, connector
):
    ada = Chat(teams.TeamsUser.make("Ada"), cards_bot, connector)
    await ada.say("hi")
    await ada.answer("Broken screen")
    menu = ada.last_card()
    await ada.press("Network")
    [done] = await cards_bot.app[SESSIONS].list()
    assert done.state == SessionState.RESOLVED
    said = await _said(ada, _press(ada, menu, "Laptops", {}, lambda d, _: None))
    assert "earlier step" in said and "What's wrong?" not in said  # starts nothing
    [old] = await cards_bot.app[SESSIONS].list()  # still the one chat, as it was
    assert old.id == done.id
    assert old.metadata["Answers.Team"] == "Network" and old.state == SessionState.RESOLVED
    # typing starts a new request, as ever
    assert "What's wrong?" in texts(await ada.say("My laptop will not start"))


def test_every_verb_a_card_carries_is_known():
    """A new verb in a card or an action must be added to bots/guest_input.py's lists."""
    patterns = [
        re.compile(r'guest\.verb\s*==\s*"([^"]+)"'),
        re.compile(r'_data\(\s*"([^"]+)"'),
        re.compile(r'"verb"\s*:\s*"([^"]+)"'),
    ]
    found: dict[str, set[str]] = {}
    for folder in ("bots", "pipelines", "cards", "examples"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".json", ".yaml"):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for pattern in patterns:
                for verb in pattern.findall(text):
                    found.setdefault(verb, set()).add(str(path.relative_to(ROOT)))
    assert {"answer", "choose", "cancel", "accept"} <= set(found)
    unknown = {v: sorted(p) for v, p in found.items() if v not in GUEST_VERBS | AGENT_VERBS}
    assert not unknown, f"add these verbs to GUEST_VERBS in bots/guest_input.py: {unknown}"
