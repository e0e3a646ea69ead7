"""Traces, metrics and logs of the real app (aiohttp, adapter, store, local connector), read
from in-memory exporters: what each turn, store call, send, transfer, routing step and timer
records, and that the incoming trace is continued. Both stores where the store matters."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app import DOCS, ENGINE, ROUTING, SESSIONS
from bots.json_logging import JsonFormatter
from telemetry import runtime
from telemetry.logs import TraceIds
from tests import teams
from tests.agent_desk import AGENTS, ALICE, BOB, Desk, waiting_guest
from tests.conftest import WEDNESDAY_10_UTC
from tests.harness import BotServer, Chat, FakeClock, settings_for, texts


@dataclass
class Captured:
    """Everything the app recorded while the fixture was active."""

    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    logs_exporter: InMemoryLogExporter
    lines: list[str] = field(default_factory=list)

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.spans if s.parent is not None
                and s.parent.span_id == parent.context.span_id]

    def descendants(self, parent: ReadableSpan) -> list[ReadableSpan]:
        out, todo = [], [parent]
        while todo:
            kids = self.children(todo.pop())
            out.extend(kids)
            todo.extend(kids)
        return out

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        out = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        out.extend((dict(p.attributes), p) for p in m.data.data_points)
        return out

    def total(self, metric: str, **labels: str) -> float:
        out = 0.0
        for attributes, point in self.points(metric):
            if all(attributes.get(k) == v for k, v in labels.items()):
                out += getattr(point, "value", None) or getattr(point, "count", 0)
        return out


class _Lines(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__()
        self.into = into
        self.setFormatter(JsonFormatter())
        self.addFilter(TraceIds())

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


@pytest.fixture
def otel(request) -> Iterator[Captured]:
    """The SDK with in-memory exporters, active for Switchboard's hooks during the test (not
    made global: other tests in this process stay untraced)."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    logs = InMemoryLogExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    captured = Captured(spans, reader, logs)
    root = logging.getLogger()
    handlers = [_Lines(captured.lines), LoggingHandler(logger_provider=logger_provider)]
    level = root.level
    root.setLevel(logging.INFO)
    for handler in handlers:
        root.addHandler(handler)
    # a CLIENT span per HTTP attempt only when asked (SWITCHBOARD_TRACE_HTTP_ATTEMPTS)
    runtime.install(tracer_provider, meter_provider, metric_interval=0.05,
                    http_attempts=getattr(request, "param", False))
    try:
        yield captured
    finally:
        runtime.uninstall()
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()


@pytest.fixture
async def traced_bot(otel, tmp_path, make_docs):
    server = await BotServer(settings_for(tmp_path), docs=make_docs(),
                             clock=FakeClock(WEDNESDAY_10_UTC)).start()
    yield server
    await server.stop()


@pytest.fixture
async def traced_desk(otel, tmp_path, make_docs, connector):
    clock = FakeClock()
    server = await BotServer(settings_for(tmp_path, config_path=str(AGENTS)), docs=make_docs(),
                             clock=clock).start()
    yield Desk(server, connector, clock)
    await server.stop()


def _turns(otel: Captured) -> list[ReadableSpan]:
    return otel.named("turn")


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


# -- a turn -------------------------------------------------------------------------------


@pytest.mark.parametrize("otel", [False, True], indirect=True, ids=["sends", "attempts"])
async def test_a_guest_turn_is_a_span_under_the_request_with_store_and_send_children(
        otel, traced_bot, connector, request):
    chat = Chat(teams.TeamsUser.make("Ada Lovelace"), traced_bot, connector)
    await chat.say("hi")
    [turn] = _turns(otel)
    attributes = dict(turn.attributes)
    session = await traced_bot.app[SESSIONS].live(chat.user.conversation_id)
    assert attributes["switchboard.activity.type"] == "message"
    assert attributes["switchboard.turn.kind"] == "message"
    assert attributes["switchboard.department"] == "service-desk"
    assert attributes["switchboard.conversation.id"] == chat.user.conversation_id
    assert attributes["switchboard.stage"] == "ask_need"
    assert attributes["switchboard.session.state"] == "open"
    assert attributes["switchboard.turn.outcome"] == "ok"
    assert attributes["switchboard.turn.sent"] == 2
    assert attributes["switchboard.session.id"] == session.id

    # the HTTP request's span (aiohttp's server instrumentation) is the turn's parent
    [server] = [s for s in otel.spans if s.kind == SpanKind.SERVER]
    assert turn.parent.span_id == server.context.span_id
    assert server.attributes.get("http.status_code", server.attributes.get(
        "http.response.status_code")) == 201

    below = otel.descendants(turn)
    store = [s for s in below if s.kind == SpanKind.CLIENT and "db.operation.name" in s.attributes]
    assert {(s.attributes["db.operation.name"], s.attributes["db.collection.name"])
            for s in store} >= {("read", "conversations"), ("batch", "tenant_data")}
    system = "azure.cosmosdb" if "cosmos" in request.node.callspec.id else "sqlite"
    assert {s.attributes["db.system.name"] for s in store} == {system}
    sends = [s for s in below if s.name == "send"]
    assert len(sends) == 2
    for send in sends:
        assert send.attributes["http.response.status_code"] == 200
        assert send.attributes["switchboard.send.attempts"] == 1
        assert send.attributes["switchboard.send.retries"] == 0
        if "attempts" in request.node.callspec.id:
            # each attempt is an HTTP client span of aiohttp's client instrumentation
            [http] = otel.children(send)
            assert http.kind == SpanKind.CLIENT and http.name == "POST"
        else:  # by default the send's own span says it all, at a tenth of the cost
            assert otel.children(send) == []

    labels = {"switchboard.department": "service-desk", "switchboard.turn.kind": "message",
              "switchboard.turn.outcome": "ok"}
    assert otel.total("switchboard.turns", **labels) == 1
    assert otel.total("switchboard.turn.duration", **labels) == 1
    assert otel.total("switchboard.store.round_trips", **{
        "db.operation.name": "batch", "db.collection.name": "tenant_data"}) >= 1


async def test_the_callers_trace_is_continued(otel, traced_bot, connector):
    user = teams.TeamsUser.make("Ada Lovelace")
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    status, _ = await traced_bot.post(
        teams.message(user, connector.url, "hi"),
        headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    assert status == 201
    [request] = [s for s in otel.spans if s.kind == SpanKind.SERVER]
    assert _hex(request.context.trace_id, 32) == trace_id
    assert _hex(request.parent.span_id, 16) == parent_id and request.parent.is_remote
    assert {_hex(s.context.trace_id, 32) for s in otel.spans} == {trace_id}


async def test_a_turn_not_sampled_records_no_span_and_is_still_counted(otel, traced_bot,
                                                                      connector):
    """The caller did not sample its trace: nothing under the request is traced (the store
    calls and sends skip their spans), and the turn and its store calls are counted."""
    user = teams.TeamsUser.make("Ada Lovelace")
    status, _ = await traced_bot.post(
        teams.message(user, connector.url, "hi"),
        headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})
    assert status == 201
    assert len(connector.sent) == 2
    assert otel.spans == []
    labels = {"switchboard.department": "service-desk", "switchboard.turn.kind": "message",
              "switchboard.turn.outcome": "ok"}
    assert otel.total("switchboard.turns", **labels) == 1
    assert otel.total("switchboard.store.round_trips", **{
        "db.operation.name": "batch", "db.collection.name": "tenant_data"}) >= 1
    # the next turn, sampled, is traced whole
    chat = Chat(user, traced_bot, connector)
    await chat.say("my laptop")
    [turn] = _turns(otel)
    assert [s.name for s in otel.descendants(turn)].count("send") >= 1


async def test_log_lines_carry_the_trace_and_span_ids(otel, traced_bot, connector):
    chat = Chat(teams.TeamsUser.make("Ada Lovelace"), traced_bot, connector)
    await chat.say("hi")
    [turn] = _turns(otel)
    [line] = [json.loads(x) for x in otel.lines if json.loads(x)["message"] == "turn"]
    assert line["trace_id"] == _hex(turn.context.trace_id, 32)
    assert line["span_id"] == _hex(turn.context.span_id, 16)
    [record] = [r.log_record for r in otel.logs_exporter.get_finished_logs()
                if r.log_record.body == "turn"]
    assert record.trace_id == turn.context.trace_id and record.span_id == turn.context.span_id


async def test_a_transfer_traces_its_rehome_steps_and_counts_by_department(
        otel, traced_bot, connector):
    chat = Chat(teams.TeamsUser.make("Ada Lovelace"), traced_bot, connector)
    await chat.say("hi")
    await chat.answer("I need to change my parental leave dates")
    await chat.press("I still need help")
    otel.spans_exporter.clear()
    sent = await chat.press("HR")
    assert "Moving you from Service Desk to HR." in texts(sent)
    [turn] = _turns(otel)
    assert turn.attributes["switchboard.turn.outcome"] == "transferred"
    assert turn.attributes["switchboard.department"] == "hr"
    names = [s.name for s in sorted(otel.descendants(turn), key=lambda s: s.start_time)]
    steps = [n for n in names if n.startswith("rehome.")]
    assert steps == ["rehome.intent", "rehome.target", "rehome.pointer", "rehome.close"]
    [event] = [e for e in turn.events if e.name == "transfer"]
    assert dict(event.attributes) == {"switchboard.transfer.source": "service-desk",
                                      "switchboard.transfer.target": "hr",
                                      "switchboard.transfer.by": "pipeline"}
    assert otel.total("switchboard.transfers", **{"switchboard.transfer.source": "service-desk",
                                                  "switchboard.transfer.target": "hr"}) == 1


async def test_store_calls_carry_cosmos_request_charge(otel, traced_bot, connector, request):
    chat = Chat(teams.TeamsUser.make("Ada Lovelace"), traced_bot, connector)
    await chat.say("hi")
    store = [s for s in otel.spans if "db.operation.name" in s.attributes]
    assert store
    cosmos = "cosmos" in request.node.callspec.id
    charges = [s.attributes.get("azure.cosmosdb.operation.request_charge") for s in store]
    if cosmos:
        # the local Cosmos server charges 1 RU per request
        assert all(c is not None and c >= 1 for c in charges), charges
        assert {s.attributes["db.system.name"] for s in store} == {"azure.cosmosdb"}
        assert otel.total("switchboard.store.request_charge") >= len(store)
    else:
        assert charges == [None] * len(store)
        assert otel.total("switchboard.store.request_charge") == 0
    assert otel.total("switchboard.store.round_trips") >= len(store)


async def test_a_store_call_outside_traced_work_is_counted_not_traced(otel, traced_bot):
    before = otel.total("switchboard.store.round_trips")
    await traced_bot.fire_timers()  # the poll: a query of the timers, nothing due
    assert otel.spans == []
    assert otel.total("switchboard.store.round_trips") > before


# -- sends ------------------------------------------------------------------------------


@pytest.mark.parametrize("otel", [True], indirect=True, ids=["attempts"])
async def test_a_throttled_send_records_its_retry_and_the_429(otel, traced_bot, connector):
    connector.failures = [429]
    chat = Chat(teams.TeamsUser.make("Ada Lovelace"), traced_bot, connector)
    await chat.say("hi")
    [first, second] = sorted(otel.named("send"), key=lambda s: s.start_time)
    assert first.attributes["switchboard.send.attempts"] == 2
    assert first.attributes["switchboard.send.retries"] == 1
    assert first.attributes["http.response.status_code"] == 200
    assert [h.attributes.get("http.status_code", h.attributes.get("http.response.status_code"))
            for h in sorted(otel.children(first), key=lambda s: s.start_time)] == [429, 200]
    assert second.attributes["switchboard.send.attempts"] == 1
    assert otel.total("switchboard.sends.throttled") == 1
    assert otel.total("switchboard.messages.undelivered") == 0


async def test_a_refused_message_counts_as_undelivered(otel, traced_bot, connector):
    connector.failures = [403]
    chat = Chat(teams.TeamsUser.make("Ada Lovelace"), traced_bot, connector)
    await chat.say("hi")
    refused = [s for s in otel.named("send")
               if s.attributes["http.response.status_code"] == 403]
    assert len(refused) == 1 and refused[0].attributes["error.type"] == "OutboundError"
    assert otel.total("switchboard.messages.undelivered",
                      **{"switchboard.department": "service-desk"}) == 1


# -- live agents and timers --------------------------------------------------------------


async def test_routing_steps_and_timers_are_traced(otel, traced_desk):
    desk = traced_desk
    alice = await desk.agent(ALICE)
    await desk.agent(BOB)
    guest = await waiting_guest(desk)
    desk.clock.advance(2.5)  # the offer timer fires 2.5 s late
    assert await desk.server.fire_timers() == 1
    [timer] = otel.named("timer")
    assert timer.parent is None  # no request caused it
    assert timer.attributes["switchboard.timer.kind"] == "offer"
    assert timer.attributes["switchboard.department"] == "it"
    assert timer.attributes["switchboard.timer.lag"] == pytest.approx(2.5)
    [offer_round] = otel.named("routing.offer_round")
    assert offer_round.parent.span_id == timer.context.span_id
    offers = [s for s in otel.descendants(timer) if s.name == "send"]
    assert len(offers) == 2  # one offer card per agent
    assert otel.total("switchboard.timer.lag", **{"switchboard.timer.kind": "offer"}) == 1

    otel.spans_exporter.clear()
    await desk.accept(alice, desk.offers(alice)[0])
    [accept] = otel.named("routing.accept")
    [turn] = _turns(otel)
    assert accept.parent.span_id == turn.context.span_id
    assert turn.attributes["switchboard.turn.kind"] == "agent:accept"
    assert turn.attributes["switchboard.agent.id"] == ALICE[1]

    otel.spans_exporter.clear()
    await guest.say("It went black after the update")
    await alice.say("Hold the power button")
    relays = otel.named("routing.relay")
    assert len(relays) == 2
    assert {_turns(otel)[i].attributes["switchboard.turn.kind"] for i in range(2)} == {
        "message", "agent:message"}


async def test_gauges_read_waiting_guests_and_available_agents(otel, traced_desk):
    desk = traced_desk
    await desk.agent(ALICE)
    await desk.agent(BOB)
    await desk.agents["Bob"].say("status away")
    await waiting_guest(desk)
    desk.clock.advance(42)
    from telemetry.gauges import read

    app = desk.server.app
    reading = await read(app[ENGINE].config, app[SESSIONS], app[ROUTING].desk.agents,
                         desk.clock)
    assert reading.waiting == {"it": 1, "hr": 0}
    assert reading.longest_wait["it"] == pytest.approx(42, abs=0.01)
    assert reading.available == {"it": 1, "hr": 0}
    runtime.ACTIVE.gauges.reading = reading
    waiting = {a["switchboard.department"]: p.value
               for a, p in otel.points("switchboard.guests.waiting")}
    assert waiting == {"it": 1, "hr": 0}
    assert {a["switchboard.department"]: p.value
            for a, p in otel.points("switchboard.agents.available")} == {"it": 1, "hr": 0}


async def test_the_gauges_are_read_in_the_background_once_per_interval(otel, traced_desk):
    desk = traced_desk
    docs = desk.server.app[DOCS]
    await waiting_guest(desk)
    # the app started the reader at start-up (metric_interval 0.05 s in this fixture)
    for _ in range(100):
        reading = runtime.ACTIVE.gauges.reading
        if reading is not None and reading.waiting.get("it") == 1:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the gauges were never read")
    # once per interval: a query per department and a read per agent, not per turn. Each
    # reading is a new object: count them while the store's calls are counted (a slow
    # store makes fewer readings in the same time, each costing the same)
    docs.stats.reset()
    readings: list = []  # held, so that no two have the same id
    for _ in range(100):
        reading = runtime.ACTIVE.gauges.reading
        if not any(reading is seen for seen in readings):
            readings.append(reading)
        await asyncio.sleep(0.005)
    reads = docs.stats.by_op
    assert len(readings) >= 3, len(readings)  # ~10 intervals of 0.05 s in 0.5 s or more
    # 2 departments a reading (one more reading may be under way at either end)
    assert 2 * (len(readings) - 2) <= reads.get("query", 0) <= 2 * (len(readings) + 1), (
        reads, len(readings))
