"""aiohttp's OpenTelemetry instrumentation, for our app and our outgoing session only.

The server middleware (opentelemetry-instrumentation-aiohttp-server) makes each request a
SERVER span and continues the caller's trace when the request carries a `traceparent`. The
client trace config (-aiohttp-client) makes each HTTP request of the pooled Bot Connector
session a CLIENT span, and passes the trace on in its headers.

Neither package's global `instrument()` is used as it stands: the server's replaces
`aiohttp.web.Application` for everyone in the process, the client's patches every
`ClientSession` (Cosmos DB's and msrest's too). The server middleware reads module state that
only its instrumentor sets (its excluded URLs, its metrics), so the instrumentor runs once
and is undone at once: the state stays, `web.Application` is aiohttp's again.

The server middleware's own metrics (`http.server.duration`, `http.server.active_requests`)
are replaced by no-op instruments (it makes them from the global meter provider, whatever it
is given): three measurements a request cost more than the turn's span when it is not
sampled, and `switchboard.turn.duration` measures the same turn, by department and kind
(docs/telemetry.md, "Cost").
"""

from __future__ import annotations

from typing import Any

import aiohttp


def server_middleware(tracer_provider: Any) -> Any:
    from opentelemetry.instrumentation import aiohttp_server
    from opentelemetry.metrics import NoOpUpDownCounter

    instrumentor = aiohttp_server.AioHttpServerInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=tracer_provider)
        instrumentor.uninstrument()
    aiohttp_server.duration_histogram_old = aiohttp_server.duration_histogram_new = None
    aiohttp_server.active_requests_counter = NoOpUpDownCounter(
        aiohttp_server.MetricInstruments.HTTP_SERVER_ACTIVE_REQUESTS)
    return aiohttp_server.create_aiohttp_middleware(tracer_provider=tracer_provider)


def client_trace_config(tracer_provider: Any, meter_provider: Any) -> aiohttp.TraceConfig:
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return create_trace_config(tracer_provider=tracer_provider, meter_provider=meter_provider)
