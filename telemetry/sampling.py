"""The default sampler: every new trace while there are few, about N a second when there are
many (a token bucket holding a second's worth), under the SDK's `ParentBased`, so that it
decides for new traces only and a caller's sampled `traceparent` is always followed.

A rate rather than a ratio: a traced turn costs about twice one that is not, and a rate
bounds what tracing costs at any load. Written here rather than taken from the Azure Monitor
exporter (its `RateLimitedSampler`): that one hashes the trace id for Application Insights'
consistent sampling and copies the span's attributes to add its sample rate, 22 µs a
request against 4 µs for this one (measured with timeit), spent on every request, traced
or not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class RateLimited(Sampler):
    """At most about `per_second` new traces a second, each one while there are fewer."""

    def __init__(self, per_second: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be more than 0")
        self.per_second = per_second
        self.clock = clock
        self._tokens = per_second
        self._at = clock()
        self._lock = threading.Lock()

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.per_second,
                               self._tokens + (now - self._at) * self.per_second)
            self._at = now
            take = self._tokens >= 1.0
            if take:
                self._tokens -= 1.0
        state = get_current_span(parent_context).get_span_context().trace_state
        if take:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        return SamplingResult(Decision.DROP, None, state)

    def get_description(self) -> str:
        return f"RateLimited{{{self.per_second}/s}}"


def default_sampler(traces_per_second: float) -> Sampler:
    """Switchboard's sampler when OTEL_TRACES_SAMPLER is not set."""
    return ParentBased(RateLimited(traces_per_second))
