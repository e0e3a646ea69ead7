"""The tracer and instruments in use, and the small span helpers every hook shares.

Nothing is active until `install` (telemetry/setup.py calls it when something is exported;
tests call it with in-memory exporters). Until then every hook is a check of one module
global: no span, no instrument, no SDK (`ACTIVE is None`).

Spans never record an exception's message or stack trace: a message may quote what a person
typed. A failed span gets status ERROR, described by the exception's class, and `error.type`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from telemetry.metrics import Gauges, Instruments

SCOPE = "switchboard"
Attributes = dict[str, str | int | float | bool]
T = TypeVar("T")


@dataclass
class Active:
    tracer: trace.Tracer
    instruments: Instruments
    gauges: Gauges
    tracer_provider: Any = None
    meter_provider: Any = None
    metric_interval: float = 60.0
    # aiohttp's instrumentation: the server middleware and the client trace config
    server_middlewares: list[Any] = field(default_factory=list)
    client_trace_configs: list[Any] = field(default_factory=list)

    @property
    def tracing(self) -> bool:
        return self.tracer_provider is not None


ACTIVE: Active | None = None
# True inside a turn the sampler did not trace: every hook under it skips its span for the
# price of one context-variable read (the OpenTelemetry context lookup costs a dozen calls)
_QUIET: ContextVar[bool] = ContextVar("switchboard_quiet", default=False)


def quiet() -> bool:
    """Inside work that is not traced (a turn not sampled): no span would be recorded."""
    return _QUIET.get()


def may_trace() -> bool:
    """A span started here could be recorded: tracing is on, and the work this is part of
    is sampled (or is no one's: a root span, which the sampler decides)."""
    active = ACTIVE
    if active is None or active.tracer_provider is None or _QUIET.get():
        return False
    parent = trace.get_current_span()
    return parent.is_recording() or not parent.get_span_context().is_valid


@contextmanager
def quieted(when: bool) -> Iterator[None]:
    """Mark the work inside as not traced, when `when`."""
    if not when:
        yield
        return
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


def install(tracer_provider: Any = None, meter_provider: Any = None, *,
            metric_interval: float = 60.0, http_attempts: bool = False) -> Active:
    """Make these providers the ones Switchboard's hooks use (None: that signal is off)."""
    global ACTIVE
    tracer = (tracer_provider.get_tracer(SCOPE) if tracer_provider is not None
              else trace.NoOpTracer())
    meter = (meter_provider.get_meter(SCOPE) if meter_provider is not None
             else metrics.NoOpMeter(SCOPE))
    gauges = Gauges()
    active = Active(tracer, Instruments(meter, gauges), gauges, tracer_provider,
                    meter_provider, metric_interval)
    if tracer_provider is not None:
        from telemetry.http import client_trace_config, server_middleware

        active.server_middlewares = [server_middleware(tracer_provider)]
        if http_attempts:
            active.client_trace_configs = [client_trace_config(tracer_provider,
                                                               meter_provider)]
    ACTIVE = active
    return active


def uninstall() -> None:
    """Back to nothing (tests). The providers are the caller's to shut down."""
    global ACTIVE
    ACTIVE = None


def fail(span: Span, exc: BaseException) -> None:
    """Mark a span failed by the exception's class only (never its message)."""
    name = type(exc).__qualname__
    span.set_attribute("error.type", name)
    span.set_status(Status(StatusCode.ERROR, name))


@contextmanager
def span(name: str, attributes: Attributes | None = None,
         kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """A child span of the current one, or a root span when there is none. Nothing when
    tracing is off, or when the current span is not sampled (its children would not be)."""
    # (with traces off and metrics on, the no-op tracer would still make and attach a span)
    active = ACTIVE
    if active is None or not may_trace():
        yield trace.INVALID_SPAN
        return
    with active.tracer.start_as_current_span(name, kind=kind, attributes=attributes,
                                             record_exception=False,
                                             set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            fail(current, exc)
            raise


def traced(name: str) -> Callable[[Callable[..., Coroutine[Any, Any, T]]],
                                  Callable[..., Coroutine[Any, Any, T]]]:
    """Decorate an async function: each call is a span `name`. With telemetry off, the call
    is the function's own coroutine (no wrapper frame)."""

    def decorate(fn: Callable[..., Coroutine[Any, Any, T]]
                 ) -> Callable[..., Coroutine[Any, Any, T]]:
        async def run(*args: Any, **kwargs: Any) -> T:
            with span(name):
                return await fn(*args, **kwargs)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, T]:
            if ACTIVE is None:
                return fn(*args, **kwargs)
            return run(*args, **kwargs)

        return call

    return decorate
