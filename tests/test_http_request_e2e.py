"""`http_request` end to end: the real app and adapter, the local Teams connector, a local
ServiceNow on loopback (tests/ticket_desk.py), on both stores.

A ticket is created once per session and stage: a redelivered activity, a timer fired again,
the stage entered again after a success, none calls twice; a timeout is not retried, and a later
attempt (the guest asks again) carries the same Idempotency-Key; 429 and 503 are retried after
their Retry-After within the timeout, other errors go to `on_error`. Nothing secret and nothing
the guest typed reaches a log line.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from app import SESSIONS
from pipelines.http_steps import idempotency_key, record_name
from storage.layout import TENANT_DATA
from tests import teams
from tests.agent_desk import person
from tests.harness import BotServer, Chat, FakeClock, settings_for, texts
from tests.ticket_desk import Fault, TicketDesk

TICKETS = Path(__file__).parent / "e2e_configs" / "tickets.yaml"
START = 1_768_989_600.0  # a Wednesday, 10:00 UTC
ALICE = ("Alice", "aaaaaaaa-0000-0000-0000-000000000001")
TYPED = 'My payslip is wrong ${Guest.Name} {"$when": "${false}"}'


@pytest.fixture
async def ticket_desk():
    desk = await TicketDesk().start()
    yield desk
    await desk.stop()


@pytest.fixture
async def tickets_bot(tmp_path, make_docs, ticket_desk, monkeypatch):
    monkeypatch.setenv("TICKETS_URL", ticket_desk.url)
    monkeypatch.setenv("TICKETS_AUTH", ticket_desk.auth)
    server = await BotServer(settings_for(tmp_path, config_path=str(TICKETS)), docs=make_docs(),
                             clock=FakeClock(START)).start()
    yield server
    await server.stop()


@pytest.fixture
def guest(tickets_bot, connector):
    return Chat(teams.TeamsUser.make("Ada Lovelace"), tickets_bot, connector)


async def session_of(bot: BotServer, chat: Chat):
    return await bot.app[SESSIONS].current(chat.user.conversation_id)


async def reach_ticket(chat: Chat, text: str = TYPED) -> None:
    """The guest opens the chat and answers: the turn that reaches the ticket stage."""
    await chat.say("hi")
    sent = await chat.answer(text)
    assert sent == [], texts(sent)  # the call runs on its own step, after this turn


async def test_a_ticket_is_created_with_the_secret_and_the_typed_text_as_data(
        tickets_bot, guest, ticket_desk):
    await reach_ticket(guest)
    assert ticket_desk.requests == []
    assert await tickets_bot.fire_timers() == 1
    assert "Ticket INC0010001 is open." in texts(guest._new())
    [post] = ticket_desk.posts()
    session = await session_of(tickets_bot, guest)
    assert post.path == "/api/now/table/incident"
    assert post.query == {"sysparm_fields": "number,sys_id"}
    assert post.headers["Authorization"] == ticket_desk.auth
    assert post.headers["Idempotency-Key"] == idempotency_key(session.id, "ticket")
    assert post.headers["Content-Type"].startswith("application/json")
    # what the guest typed is text in the body, never read as a template
    assert post.body == {"short_description": "HR chat with Ada Lovelace", "description": TYPED,
                         "correlation_id": session.id, "impact": 3}
    assert session.metadata["Answers.Ticket"] == "INC0010001"
    assert session.metadata["Ticket.SysId"] == ticket_desk.created()[0]["sys_id"]
    assert session.stage_key == "more"
    record = await tickets_bot.app[SESSIONS].docs.read(
        TENANT_DATA, (session.tenant_id, session.id), f"{session.id}:{record_name('ticket')}")
    assert record.body["outcome"] == "done" and record.body["status"] == 201
    assert TYPED not in str(record.body) and ticket_desk.auth not in str(record.body)


def logged(caplog) -> str:
    """Every log line of the run, with its fields, as one text."""
    return "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)


def assert_nothing_secret_logged(caplog, desk: TicketDesk) -> None:
    text = logged(caplog)
    assert desk.auth not in text and desk.auth.split()[1] not in text
    assert "payslip" not in text and TYPED not in text


@pytest.mark.parametrize("replay", ["twice", "concurrent"])
async def test_a_redelivered_activity_and_a_timer_fired_again_call_once(
        tickets_bot, guest, ticket_desk, replay):
    await guest.say("hi")
    guest.replay = replay
    await guest.answer(TYPED)
    guest.replay = None
    fired = [await tickets_bot.fire_timers() for _ in range(3)]
    assert fired == [1, 0, 0]
    assert len(ticket_desk.posts()) == 1 and len(ticket_desk.created()) == 1
    assert texts(guest._new()).count("Ticket INC0010001 is open.") == 1


async def test_the_endpoint_timing_out_once_is_not_retried_and_a_later_attempt_uses_the_same_key(
        tickets_bot, guest, ticket_desk, caplog):
    """The endpoint creates the ticket but answers after the stage's 2 s timeout: the chat goes
    to `on_error`, the call is not repeated (not by a redelivery, not by the timer), and when the
    guest asks again the request carries the same Idempotency-Key, which this endpoint
    honours: still one ticket, and now its number."""
    caplog.set_level(logging.INFO)
    ticket_desk.honour_keys = True
    ticket_desk.faults = [Fault(delay=3.0)]
    await guest.say("hi")
    answer = teams.submit(guest.user, guest.connector.url, guest.last_card(), {"answer": TYPED})
    await guest.send(answer)
    assert await tickets_bot.fire_timers() == 1
    assert "We could not open a ticket just now." in texts(guest._new())
    assert "Anything else?" in texts(guest.connector.to(guest.user.conversation_id))
    # Teams redelivers the guest's answer; the timer poll runs again
    assert await guest.send(answer) == []
    assert await tickets_bot.fire_timers() == 0
    assert len(ticket_desk.posts()) == 1 and len(ticket_desk.created()) == 1
    session = await session_of(tickets_bot, guest)
    assert "Answers.Ticket" not in session.metadata and session.stage_key == "more"
    record = await tickets_bot.app[SESSIONS].docs.read(
        TENANT_DATA, (session.tenant_id, session.id), f"{session.id}:{record_name('ticket')}")
    assert record.body["outcome"] == "unknown" and "no answer within 2 s" in record.body["reason"]
    assert any(r.levelno == logging.WARNING and "unknown" in r.getMessage()
               for r in caplog.records)

    await guest.answer("Ticket again")
    assert await tickets_bot.fire_timers() == 1
    assert "Ticket INC0010001 is open." in texts(guest._new())
    first, second = ticket_desk.posts()
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == \
        idempotency_key(session.id, "ticket")
    assert len(ticket_desk.created()) == 1
    assert_nothing_secret_logged(caplog, ticket_desk)


async def test_after_a_success_the_stage_entered_again_does_not_call(
        tickets_bot, guest, ticket_desk, caplog):
    caplog.set_level(logging.INFO)
    await reach_ticket(guest)
    await tickets_bot.fire_timers()
    await guest.answer("Ticket again")
    assert await tickets_bot.fire_timers() == 1
    assert "Ticket INC0010001 is open." in texts(guest._new())
    assert len(ticket_desk.posts()) == 1
    assert "already done in this session" in logged(caplog)


@pytest.mark.parametrize("status", [429, 503])
async def test_429_and_503_are_retried_after_their_retry_after(
        tickets_bot, guest, ticket_desk, status):
    ticket_desk.faults = [Fault(status=status, retry_after="1")]
    await reach_ticket(guest)
    await tickets_bot.fire_timers()
    assert "Ticket INC0010001 is open." in texts(guest._new())
    first, second = ticket_desk.posts()
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert len(ticket_desk.created()) == 1


async def test_a_retry_after_past_the_timeout_is_not_waited_for(tickets_bot, guest, ticket_desk):
    ticket_desk.faults = [Fault(status=429, retry_after="120")]
    await reach_ticket(guest)
    await tickets_bot.fire_timers()
    assert "We could not open a ticket just now." in texts(guest._new())
    assert len(ticket_desk.posts()) == 1


@pytest.mark.parametrize("fault", [
    Fault(status=500, body={"error": {"message": f"cannot store {TYPED}",
                                      "detail": "password=hunter2"}, "password": "hunter2"}),
    Fault(status=400, body={"errorMessages": [], "errors": {"summary": TYPED}}),
    Fault(drop=True, acts=True),
], ids=["500", "400", "dropped"])
async def test_other_errors_go_to_on_error_once_and_are_logged_without_secrets(
        tickets_bot, guest, ticket_desk, caplog, fault):
    caplog.set_level(logging.INFO)
    ticket_desk.faults = [fault]
    await reach_ticket(guest)
    await tickets_bot.fire_timers()
    assert "We could not open a ticket just now." in texts(guest._new())
    assert len(ticket_desk.posts()) == 1
    [warning] = [r for r in caplog.records if r.name == "switchboard.http_request"]
    assert warning.levelno == logging.WARNING
    if fault.status:
        assert f"HTTP {fault.status}" in warning.getMessage()
        assert "[redacted]" in warning.getMessage()
    else:
        assert "unknown" in warning.getMessage()
    assert "hunter2" not in logged(caplog)
    assert_nothing_secret_logged(caplog, ticket_desk)


async def test_a_wrong_secret_is_the_endpoints_401_and_goes_to_on_error(
        tickets_bot, guest, ticket_desk, caplog):
    ticket_desk.auth = "Basic c29tZW9uZTplbHNl"
    await reach_ticket(guest)
    await tickets_bot.fire_timers()
    assert "We could not open a ticket just now." in texts(guest._new())
    assert "HTTP 401" in logged(caplog) and "User Not Authenticated" in logged(caplog)
    assert ticket_desk.created() == []


async def test_the_agent_sees_the_ticket_number_and_the_ticket_is_resolved_at_the_end(
        tickets_bot, guest, ticket_desk, connector):
    alice = Chat(person(*ALICE), tickets_bot, connector)
    await alice.install()
    await reach_ticket(guest, "Payroll question")
    await tickets_bot.fire_timers()
    await guest.answer("Talk to someone")
    await tickets_bot.fire_timers()  # the offer round
    [offer] = [s for s in alice._new() if "New chat waiting in HR" in s.all_text()]
    assert "Ticket" in offer.all_text() and "INC0010001" in offer.all_text()
    status, _ = await tickets_bot.post(teams.execute(alice.user, connector.url, offer.card, {},
                                                     "Accept"))
    assert status == 200
    await alice.say("end")
    assert await tickets_bot.fire_timers() == 1  # the ticket's resolution
    [patch] = [r for r in ticket_desk.requests if r.method == "PATCH"]
    sys_id = ticket_desk.created()[0]["sys_id"]
    assert patch.path == f"/api/now/table/incident/{sys_id}"
    assert patch.body["state"] == "6" and ticket_desk.tickets[sys_id]["state"] == "6"
    session = await tickets_bot.app[SESSIONS].get("hr", (await session_of(tickets_bot, guest)).id)
    assert session.state.value == "resolved"


async def test_with_its_url_variable_unset_the_stage_calls_nothing_and_goes_to_on_error(
        tmp_path, make_docs, connector, monkeypatch, caplog):
    monkeypatch.delenv("TICKETS_URL", raising=False)
    monkeypatch.delenv("TICKETS_AUTH", raising=False)
    server = await BotServer(settings_for(tmp_path, config_path=str(TICKETS)), docs=make_docs(),
                             clock=FakeClock(START)).start()
    try:
        assert "TICKETS_URL is not set: the stage calls nothing" in logged(caplog)
        guest = Chat(teams.TeamsUser.make("Ada Lovelace"), server, connector)
        await guest.say("hi")
        sent = await guest.answer("My payslip is wrong")
        assert "We could not open a ticket just now." in texts(sent)  # in the same turn
        assert await server.fire_timers() == 0
    finally:
        await server.stop()


@pytest.fixture
def example(tmp_path) -> Path:
    """examples/ as shipped, but for the allowlist, which gains the local ServiceNow's
    loopback address."""
    examples = tmp_path / "examples"
    shutil.copytree(Path(__file__).resolve().parents[1] / "examples", examples)
    config = examples / "helpdesk.yaml"
    text = config.read_text()
    assert "http_allowlist: [acme.service-now.com]" in text
    config.write_text(text.replace("http_allowlist: [acme.service-now.com]",
                                   "http_allowlist: [acme.service-now.com, 127.0.0.1]"))
    return config


async def test_the_example_opens_an_hr_ticket_before_the_agent_takes_the_chat(
        tmp_path, make_docs, ticket_desk, connector, monkeypatch, example):
    """The ticket's number is on Helen's offer card and on the guest's summary."""
    config = example
    monkeypatch.setenv("HR_TICKETS_URL", ticket_desk.url)
    monkeypatch.setenv("HR_TICKETS_AUTH", ticket_desk.auth)
    server = await BotServer(settings_for(tmp_path, config_path=str(config)), docs=make_docs(),
                             clock=FakeClock(START)).start()
    try:
        helen = Chat(teams.TeamsUser("Helen Brooks", "00000000-0000-0000-0000-000000000104",
                                     "personal-chat-helen"), server, connector)
        await helen.install()
        chat = Chat(teams.TeamsUser.make("Jordan Rivera"), server, connector)
        await chat.say("hi")
        await chat.answer("A question about my contract hours")
        if "I still need help" in texts(chat.connector.to(chat.user.conversation_id)[-1:]):
            await chat.press("I still need help")
        await chat.press("HR")
        await chat.answer("E12345")
        assert await chat.answer("Something else") == []
        assert await server.fire_timers() == 1  # the ticket
        assert "Connecting you with someone from HR" in texts(chat._new())
        [post] = ticket_desk.posts()
        assert post.path == "/api/now/table/incident"
        assert post.body["short_description"] == "HR chat with Jordan Rivera: Something else"
        assert post.body["description"] == "A question about my contract hours"
        await server.fire_timers()  # the offer round
        [offer] = [s for s in helen._new() if "New chat waiting in HR" in s.all_text()]
        assert "Ticket" in offer.all_text() and "INC0010001" in offer.all_text()
        await server.post(teams.execute(helen.user, connector.url, offer.card, {}, "Accept"))
        await helen.say("end")
        summary = texts(chat._new())
        assert "HR has your request" in summary and "INC0010001" in summary
    finally:
        await server.stop()


async def test_the_guest_writing_while_the_call_is_in_flight_loses_nothing(
        tickets_bot, guest, ticket_desk):
    """The guest's turn writes the session while the call waits for its answer: the call's
    write then loses the race, and its result is applied to the newer session, without a
    second call."""
    ticket_desk.faults = [Fault(delay=0.8)]
    await reach_ticket(guest)
    calling = asyncio.create_task(tickets_bot.fire_timers())
    for _ in range(100):  # until the request has reached the desk
        if ticket_desk.requests:
            break
        await asyncio.sleep(0.01)
    assert ticket_desk.requests
    assert "One moment, please." in texts(await guest.say("hello?"))
    assert await calling == 1
    assert "Ticket INC0010001 is open." in texts(guest._new())
    assert len(ticket_desk.posts()) == 1
    session = await session_of(tickets_bot, guest)
    assert session.metadata["Answers.Ticket"] == "INC0010001" and session.stage_key == "more"
    lines = await tickets_bot.app[SESSIONS].transcript(session.tenant_id, session.id)
    assert any(e.sender == "guest" and e.text == "hello?" for e in lines)
