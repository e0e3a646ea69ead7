"""Outgoing sends to the Bot Connector: a `send` span each, 429s and undelivered messages.

`traced_send` wraps the one method every send goes through (bots/outbound.py `request`).
While it runs, the outbound code reports what happens (`waited` for the rate limiter, each
`answered` HTTP status, each `retrying`), and the span gets the totals: attempts, retries,
seconds waited, the last status. Each attempt is also an HTTP CLIENT span of its own (the
aiohttp client instrumentation, telemetry/http.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry.trace import SpanKind

from telemetry import runtime
from telemetry.metrics import DEPARTMENT

T = TypeVar("T")


@dataclass(slots=True)
class SendRecord:
    attempts: int = 0
    retries: int = 0
    waited: float = 0.0
    status: int = 0


_SEND: ContextVar[SendRecord | None] = ContextVar("switchboard_send", default=None)


def traced_send(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
    """Decorate `Outbound.request(self, method, ...)`. Off: the call is `fn`'s coroutine."""

    async def run(active: runtime.Active, args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        record = SendRecord()
        token = _SEND.set(record)
        method = args[1] if len(args) > 1 and isinstance(args[1], str) else "?"
        try:
            with runtime.span("send", {"http.request.method": method}, SpanKind.INTERNAL) as span:
                try:
                    return await fn(*args, **kwargs)
                finally:
                    if span.is_recording():
                        span.set_attributes({
                            "switchboard.send.attempts": record.attempts,
                            "switchboard.send.retries": record.retries,
                            "switchboard.send.rate_limit_wait": round(record.waited, 6),
                            "http.response.status_code": record.status,
                        })
        finally:
            _SEND.reset(token)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, T]:
        active = runtime.ACTIVE
        if active is None or runtime.quiet():
            return fn(*args, **kwargs)  # no span to say its attempts (429s still count)
        return run(active, args, kwargs)

    return call


def waited(seconds: float) -> None:
    """The send in progress waited this long for the rate limiter."""
    record = _SEND.get()
    if record is not None:
        record.waited += seconds


def answered(status: int) -> None:
    """The Bot Connector answered an attempt with this HTTP status."""
    active = runtime.ACTIVE
    if active is None:
        return
    record = _SEND.get()
    if record is not None:
        record.attempts += 1
        record.status = status
    if status == 429:
        active.instruments.throttled.add(1)


def retrying() -> None:
    """The send in progress will be tried again."""
    record = _SEND.get()
    if record is not None:
        record.retries += 1


def undelivered(department: str, count: int) -> None:
    """Messages of a session that could not be delivered (refused, or throttled too long)."""
    active = runtime.ACTIVE
    if active is not None and count:
        active.instruments.undelivered.add(count, {DEPARTMENT: department})


def client_trace_configs() -> list[Any] | None:
    """For the outgoing aiohttp session: the client instrumentation (None when off)."""
    active = runtime.ACTIVE
    return list(active.client_trace_configs) if active and active.client_trace_configs else None

