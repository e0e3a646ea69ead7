"""Turns, timers and transfers: their spans and metrics.

A turn is one activity from Teams. The adapter wraps it (`in_turn`): a `turn` span, child of
the HTTP request's span, and at its end the `switchboard.turns` count and
`switchboard.turn.duration`. What the turn was (its kind, the session, department, stage and
outcome) is known only once the bot has handled it: the bot says so (`turn_done`), and the
wrapper puts it on the span and the metrics.

A timer firing is a `timer` span of its own (a root span: no request caused it), with
`switchboard.timer.lag`, how late it fired.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from opentelemetry.trace import SpanKind

from telemetry import runtime
from telemetry.metrics import DEPARTMENT, KIND, OUTCOME

T = TypeVar("T")

CONVERSATION = "switchboard.conversation.id"
SESSION = "switchboard.session.id"
STAGE = "switchboard.stage"
STATE = "switchboard.session.state"
ACTIVITY_TYPE = "switchboard.activity.type"
AGENT = "switchboard.agent.id"
SENT = "switchboard.turn.sent"
NONE = "none"


@dataclass(slots=True)
class TurnRecord:
    kind: str
    department: str = NONE
    outcome: str = "ok"
    attributes: dict[str, str | int] | None = None


_TURN: ContextVar[TurnRecord | None] = ContextVar("switchboard_turn", default=None)


class _Activity(Protocol):
    type: Any
    conversation: Any


def in_turn(coro: Coroutine[Any, Any, T], activity: _Activity) -> Coroutine[Any, Any, T]:
    """The turn `coro` runs, traced and counted. With telemetry off: `coro` itself."""
    active = runtime.ACTIVE
    if active is None:
        return coro
    return _turn(active, coro, activity)


async def _turn(active: runtime.Active, coro: Coroutine[Any, Any, T], activity: _Activity) -> T:
    kind = activity.type if isinstance(activity.type, str) and activity.type else "unknown"
    record = TurnRecord(kind=kind[:40])
    token = _TURN.set(record)
    started = time.perf_counter()
    try:
        if runtime.may_trace():
            return await _traced(coro, record, activity)
        with runtime.quieted(True):  # the request was not sampled: nothing under it is
            return await coro
    except BaseException:
        record.outcome = "error"
        raise
    finally:
        _TURN.reset(token)
        labels = ((DEPARTMENT, record.department), (KIND, record.kind),
                  (OUTCOME, record.outcome))
        active.instruments.turns.add(1, labels)
        active.instruments.turn_duration.record(time.perf_counter() - started, dict(labels))


async def _traced(coro: Coroutine[Any, Any, T], record: TurnRecord, activity: _Activity) -> T:
    """The turn's span; what the turn was goes on it at its end."""
    attributes: runtime.Attributes = {ACTIVITY_TYPE: record.kind}
    conversation = getattr(activity.conversation, "id", None)
    if isinstance(conversation, str):
        attributes[CONVERSATION] = conversation
    with (runtime.span("turn", attributes, SpanKind.INTERNAL) as span,
          runtime.quieted(not span.is_recording())):
        try:
            return await coro
        except BaseException:
            record.outcome = "error"
            raise
        finally:
            if span.is_recording():
                span.set_attributes({KIND: record.kind, DEPARTMENT: record.department,
                                     OUTCOME: record.outcome, **(record.attributes or {})})


def outcome_of(events: Iterable[str], state: str | None) -> str:
    """A short, bounded word for how the turn ended (the events are the engine's own)."""
    for event in events:
        if event in ("duplicate", "stale_card", "hop_limit", "help"):
            return event
        if event.startswith("transferred:"):
            return "transferred"
        if event.startswith("closed:"):
            return "closed"
    return "ok" if state is None or state == "open" else state


class _Session(Protocol):
    id: str
    tenant_id: str
    stage_key: str | None
    state: Any


class _Result(Protocol):
    sent: int
    events: list[str]


def turn_done(kind: str, session: _Session | None = None, result: _Result | None = None, *,
              agent: str | None = None) -> None:
    """What the turn in progress was (the bot's turn log line says the same): its kind, the
    session it ended in, what it sent and how it ended; or the agent whose turn it was."""
    record = _TURN.get()
    if record is None:
        return
    record.kind = kind[:40]
    state = getattr(session.state, "value", None) if session is not None else None
    if session is not None:
        record.department = session.tenant_id
    if record.outcome != "error":
        record.outcome = outcome_of(result.events if result else (), state)
    attributes: dict[str, str | int] = {SENT: result.sent if result else 0}
    values = ((SESSION, session.id if session else None),
              (STAGE, session.stage_key if session else None), (STATE, state), (AGENT, agent))
    for name, value in values:
        if value:
            attributes[name] = value
    record.attributes = attributes


def turn_failed() -> None:
    """The turn failed (botbuilder's on_turn_error caught it): its outcome is `error`."""
    record = _TURN.get()
    if record is not None:
        record.outcome = "error"


class _Timer(Protocol):
    kind: str
    tenant_id: str
    session_id: str
    due_at: float
    attempts: int


Handler = Callable[[Any], Awaitable[None]]


def traced_timer(handler: Handler, clock: Callable[[], float]) -> Handler:
    """The timer handler, each firing a `timer` span with its lag. Off: `handler` itself."""
    active = runtime.ACTIVE
    if active is None:
        return handler

    async def fire(timer: _Timer) -> None:
        lag = max(0.0, clock() - timer.due_at)
        active.instruments.timer_lag.record(lag, {"switchboard.timer.kind": timer.kind})
        attributes: runtime.Attributes = {
            "switchboard.timer.kind": timer.kind, DEPARTMENT: timer.tenant_id,
            SESSION: timer.session_id, "switchboard.timer.lag": lag,
            "switchboard.timer.attempt": timer.attempts,
        }
        with runtime.span("timer", attributes):
            await handler(timer)

    return fire


def transferred(source: str, target: str, by: str) -> None:
    """A transfer's intent is written: counted by source and target department."""
    active = runtime.ACTIVE
    if active is None:
        return
    who = "agent" if by.startswith("agent:") else by
    labels = {"switchboard.transfer.source": source, "switchboard.transfer.target": target,
              "switchboard.transfer.by": who}
    active.instruments.transfers.add(1, labels)
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.add_event("transfer", labels)
