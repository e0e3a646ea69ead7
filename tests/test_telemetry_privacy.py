"""Never what a person typed: guests and agents type a unique marker at every place a person
can type (messages, answers, an FAQ question, a refused answer, card inputs, a feedback
comment, an agent's relay and commands, their display names), through the real app, and
every span (name, attributes, events, resource, status), metric point and log line (the
JSON lines and the exported records) is searched for it. The export of the same through
OTLP to a real receiver is tests/test_telemetry_export.py."""

from __future__ import annotations

import json
import uuid

from tests import teams, test_telemetry
from tests.agent_desk import AGENTS, ALICE, BOB, Desk
from tests.connector import Connector
from tests.harness import BotServer, Chat, FakeClock, settings_for, texts
from tests.test_telemetry import Captured

otel = test_telemetry.otel  # the fixture: in-memory exporters


def new_marker() -> str:
    # letters outside hex and base64's usual runs, so no id or encoded byte string can
    # contain it by chance
    return "Qzmarker" + "".join(chr(ord("g") + int(c, 16) % 20) for c in uuid.uuid4().hex[:12])


async def helpdesk_guest_types(server: BotServer, connector: Connector, marker: str) -> int:
    """The example help desk from hello to feedback, the marker in everything typed; how many
    turns the guest took (8, or 9 when the FAQ showed articles and they pressed past them)."""
    turns = 8
    chat = Chat(teams.TeamsUser.make(f"Ada {marker}"), server, connector)
    assert "welcome to the Service Desk" in texts(await chat.say(f"hi {marker}"))
    sent = await chat.answer(f"I need to change my parental leave dates {marker}")
    # the FAQ searched what they typed; with the random marker in it, it may show articles
    # or judge none close enough and stay quiet (both are the stage's own outcomes)
    if "These articles may answer your question:" in texts(sent):
        sent = await chat.press("I still need help")
        turns += 1
    assert "Which department should handle this?" in texts(sent)
    sent = await chat.press("HR")
    assert "Moving you from Service Desk to HR." in texts(sent)
    sent = await chat.answer(f"E{marker}")  # refused: not an employee number
    assert "please enter an employee number" in texts(sent)
    await chat.say(f"help {marker}")
    await chat.answer("E12345")
    await chat.answer("Leave")
    sent = await chat.press("Send", rating="5", comment=f"Quick and friendly {marker}")
    assert "Thank you for your feedback!" in texts(sent)
    # what was typed did go through the bot: the cards it sent back quote it
    assert marker in json.dumps([s.activity for s in connector.sent])
    return turns


async def agents_type(desk: Desk, marker: str) -> None:
    """A guest waits, an agent accepts, both write, the agent tries commands."""
    alice = await desk.agent(ALICE)
    await desk.agent(BOB)
    guest = desk.guest(f"Gina {marker}")
    await guest.say(f"hi {marker}")
    await guest.say(f"My screen is black {marker}")
    await desk.server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[0])
    await guest.say(f"It went black after the update {marker}")
    await alice.say(f"Hold the power button {marker}")
    sent = await alice.say(f"transfer {marker}")  # no such department: refused, quoting it
    assert marker in texts(sent)
    await alice.say(f"status {marker}")
    await alice.say(f"switch {marker}")
    await alice.say("end")


def everything(otel: Captured) -> list[str]:
    """Every span, metric point and log line recorded, as text."""
    out: list[str] = []
    for span in otel.spans:
        out.append(json.dumps({
            "name": span.name, "attributes": dict(span.attributes or {}),
            "events": [(e.name, dict(e.attributes or {})) for e in span.events],
            "status": span.status.description, "resource": dict(span.resource.attributes),
            "links": [dict(link.attributes or {}) for link in span.links],
        }, default=str))
    data = otel.reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    out.append(json.dumps([metric.name, dict(point.attributes or {})],
                                          default=str))
    out.extend(otel.lines)
    for item in otel.logs_exporter.get_finished_logs():
        record = item.log_record
        out.append(json.dumps([record.body, dict(record.attributes or {})], default=str))
    return out


def assert_absent(marker: str, recorded: list[str], at_least: int) -> None:
    assert len(recorded) >= at_least, f"only {len(recorded)} items recorded"
    found = [item for item in recorded if marker.casefold() in item.casefold()]
    assert not found, f"typed text in telemetry: {found[:3]}"


async def test_nothing_a_guest_types_is_recorded(otel, tmp_path, make_docs, connector):
    from tests.conftest import WEDNESDAY_10_UTC

    marker = new_marker()
    server = await BotServer(settings_for(tmp_path), docs=make_docs(),
                             clock=FakeClock(WEDNESDAY_10_UTC)).start()
    try:
        await helpdesk_guest_types(server, connector, marker)
    finally:
        await server.stop()
    recorded = everything(otel)
    assert_absent(marker, recorded, at_least=100)
    # it was looked for where it could have been: the turns, the transfer, the store calls
    assert any('"switchboard.turn.kind": "answer"' in r for r in recorded)
    assert any("rehome.intent" in r for r in recorded)
    assert any('"db.operation.name": "batch"' in r for r in recorded)


async def test_nothing_an_agent_or_their_guest_types_is_recorded(otel, tmp_path, make_docs,
                                                                  connector):
    marker = new_marker()
    clock = FakeClock()
    server = await BotServer(settings_for(tmp_path, config_path=str(AGENTS)), docs=make_docs(),
                             clock=clock).start()
    try:
        await agents_type(Desk(server, connector, clock), marker)
    finally:
        await server.stop()
    recorded = everything(otel)
    assert_absent(marker, recorded, at_least=100)
    assert any("routing.relay" in r for r in recorded)


def test_the_marker_would_be_found(otel):
    """The search itself: a marker put where the app must never put one is found."""
    marker = new_marker()
    from telemetry import runtime

    with runtime.span("turn", {"leak": f"typed {marker}"}):
        pass
    try:
        assert_absent(marker, everything(otel), at_least=1)
    except AssertionError as exc:
        assert "typed text in telemetry" in str(exc)
    else:
        raise AssertionError("the search missed the marker")

