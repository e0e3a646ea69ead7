"""A local OTLP/HTTP receiver: what a collector would get from the bot, decoded.

Serves `POST /v1/traces`, `/v1/metrics` and `/v1/logs` on loopback, decodes each protobuf
request with opentelemetry-proto (gzip or plain) and keeps it, answering as a collector
does (200 with an empty protobuf response). Also `POST /v2.1/track`, Application Insights'
ingestion API (JSON envelopes, gzip or plain), for the Azure Monitor exporter pointed at it
by a connection string's `IngestionEndpoint`.

    python tests/otlp_receiver.py --port 4318     # for bench/telemetry_load.py: counts only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {
    "traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
}


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    value = getattr(any_value, kind)
    if kind == "array_value":
        return [_value(v) for v in value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.values}
    return value


def attributes(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items}


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    resource: dict[str, Any]


@dataclass
class Point:
    metric: str
    attributes: dict[str, Any]
    value: float  # a sum's or gauge's value, a histogram's count


@dataclass
class Log:
    body: Any
    attributes: dict[str, Any]
    trace_id: str
    span_id: str
    severity: str


@dataclass
class Received:
    """Everything decoded so far; `raw` keeps each request as JSON, to search it whole."""

    requests: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    spans: list[Span] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    envelopes: list[dict[str, Any]] = field(default_factory=list)  # Application Insights'
    raw: list[str] = field(default_factory=list)
    keep: bool = True  # False: count only (the benchmark)
    counted: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})

    def metric_names(self) -> set[str]:
        return {p.metric for p in self.points}

    def points_of(self, metric: str) -> list[Point]:
        return [p for p in self.points if p.metric == metric]


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class Receiver:
    def __init__(self, keep: bool = True) -> None:
        self.received = Received(keep=keep)
        self.url = ""
        self._changed = asyncio.Event()

    async def _otlp(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in KINDS:
            raise web.HTTPNotFound()
        message_type, response_type = KINDS[kind]
        body = _decompress(await request.read(), request.headers.get("Content-Encoding", ""))
        message = message_type()
        message.ParseFromString(body)
        received = self.received
        received.requests[kind] += 1
        getattr(self, f"_{kind}")(message)
        if received.keep:
            received.raw.append(json.dumps(MessageToDict(message)))
        self._changed.set()
        return web.Response(body=response_type().SerializeToString(),
                            content_type="application/x-protobuf")

    def _traces(self, message: ExportTraceServiceRequest) -> None:
        for resource_spans in message.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope in resource_spans.scope_spans:
                self.received.counted["traces"] += len(scope.spans)
                if not self.received.keep:
                    continue
                for s in scope.spans:
                    self.received.spans.append(Span(
                        s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                        s.kind, attributes(s.attributes),
                        [(e.name, attributes(e.attributes)) for e in s.events],
                        s.status.code, resource))

    def _metrics(self, message: ExportMetricsServiceRequest) -> None:
        for resource_metrics in message.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    self.received.counted["metrics"] += 1
                    if not self.received.keep:
                        continue
                    data = metric.WhichOneof("data")
                    for point in getattr(metric, data).data_points:
                        if data == "histogram":
                            value = float(point.count)
                        else:
                            value = point.as_double if point.HasField("as_double") else float(
                                point.as_int)
                        self.received.points.append(
                            Point(metric.name, attributes(point.attributes), value))

    def _logs(self, message: ExportLogsServiceRequest) -> None:
        for resource_logs in message.resource_logs:
            for scope in resource_logs.scope_logs:
                self.received.counted["logs"] += len(scope.log_records)
                if not self.received.keep:
                    continue
                for record in scope.log_records:
                    self.received.logs.append(Log(
                        _value(record.body), attributes(record.attributes),
                        record.trace_id.hex(), record.span_id.hex(), record.severity_text))

    async def _track(self, request: web.Request) -> web.Response:
        body = _decompress(await request.read(), request.headers.get("Content-Encoding", ""))
        text = body.decode("utf-8")
        envelopes = json.loads(text) if text.lstrip().startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]
        self.received.envelopes.extend(envelopes)
        self.received.raw.append(text)
        self._changed.set()
        return web.json_response({"itemsReceived": len(envelopes),
                                  "itemsAccepted": len(envelopes), "errors": []})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.received.requests,
                                  "items": self.received.counted})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/{kind}", self._otlp)
        app.router.add_post("/{prefix:/*}v2.1/track", self._track)
        app.router.add_get("/stats", self._stats)
        return app

    async def wait_for(self, check: Any, seconds: float = 20.0) -> None:
        """Until `check(received)` is true (bounded)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not check(self.received):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"the receiver did not get it in {seconds}s: "
                                     f"{self.received.requests}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))


async def start_receiver(keep: bool = True, port: int = 0) -> tuple[Receiver, web.AppRunner]:
    receiver = Receiver(keep)
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    receiver.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    return receiver, runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    async def serve() -> None:
        _, runner = await start_receiver(keep=False, port=args.port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
