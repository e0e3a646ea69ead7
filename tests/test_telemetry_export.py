"""Export really happens: the real bot process (`python app.py`), configured only by the
standard environment variables, sends its traces, metrics and logs to a local OTLP/HTTP
receiver (tests/otlp_receiver.py, decoding with opentelemetry-proto), and to Application
Insights' ingestion API through azure-monitor-opentelemetry. A guest types a marker at every
step; it is in nothing that was exported, nor in the bot's own log lines."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.bot_process import clean_env, free_port, start_bot
from tests.connector import Connector
from tests.harness import BotServer, settings_for
from tests.otlp_receiver import Received, start_receiver
from tests.test_telemetry_privacy import helpdesk_guest_types, new_marker

# the Azure Monitor distro's own traffic to Microsoft (statsbeat, its settings service, the VM
# metadata detector) is turned off: the only place it may send to is the receiver
QUIET_AZURE = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
}


def _without_telemetry(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items()
            if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}


class _Proxy:
    """Stands where HTTP(S)_PROXY points: records any request meant for another host."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(f"{request.method} {request.path_qs}")
        return web.Response(status=502)


async def _chat(bot_url: str, tmp_path: Path, connector: Connector, marker: str) -> int:
    server = BotServer(settings_for(tmp_path))
    server.url = bot_url
    server.http = aiohttp.ClientSession()
    try:
        return await helpdesk_guest_types(server, connector, marker)
    finally:
        await server.http.close()


async def _run_bot(env: dict[str, str], tmp_path: Path, connector: Connector,
                   marker: str) -> tuple[str, int]:
    """Start the bot, chat, stop it with SIGTERM (it flushes its telemetry); its stderr and
    how many turns the guest took."""
    port = free_port()
    log = tmp_path / "bot.log"
    env = {**_without_telemetry(clean_env()), **env, "SWITCHBOARD_PORT": str(port),
           "SWITCHBOARD_DB_PATH": str(tmp_path / "bot.sqlite3")}
    process = await asyncio.to_thread(start_bot, env, port, 60, log)
    try:
        taken = await _chat(f"http://127.0.0.1:{port}", tmp_path, connector, marker)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return log.read_text(), taken


def _absent(marker: str, *texts: str) -> None:
    for text in texts:
        assert marker.casefold() not in text.casefold(), text[
            max(0, text.casefold().find(marker.casefold()) - 300):][:600]


async def test_the_bot_exports_traces_metrics_and_logs_over_otlp(tmp_path, connector):
    receiver, runner = await start_receiver()
    marker = new_marker()
    try:
        stderr, taken = await _run_bot({
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            # every turn traced, and the INFO lines exported (defaults: 5 a second, warnings)
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_PYTHON_LOG_HANDLER_LEVEL": "info",
            "SWITCHBOARD_TRACE_HTTP_ATTEMPTS": "true",
            "SWITCHBOARD_INSTANCE": "export-test",
        }, tmp_path, connector, marker)
        got: Received = receiver.received
    finally:
        await runner.cleanup()
    assert got.requests["traces"] and got.requests["metrics"] and got.requests["logs"]

    turns = [s for s in got.spans if s.name == "turn"]
    assert len(turns) == taken, [s.attributes for s in turns]
    assert {s.attributes["switchboard.department"] for s in turns} == {"service-desk", "hr"}
    assert turns[0].resource["service.name"] == "switchboard"
    assert turns[0].resource["service.instance.id"] == "export-test"
    servers = {s.span_id: s for s in got.spans if s.kind == 2}  # SPAN_KIND_SERVER
    assert all(t.parent_id in servers for t in turns)
    names = {s.name for s in got.spans}
    assert {"rehome.intent", "rehome.target", "rehome.pointer", "rehome.close", "send",
            "POST", "batch tenant_data", "read conversations"} <= names, names

    assert {"switchboard.turns", "switchboard.turn.duration", "switchboard.transfers",
            "switchboard.store.round_trips", "switchboard.guests.waiting",
            "switchboard.guests.longest_wait", "switchboard.agents.available",
            } <= got.metric_names(), got.metric_names()
    # the server instrumentation's metrics are off: the turn's duration says the same
    assert not {"http.server.duration", "http.server.active_requests"} & got.metric_names()
    counted = sum(p.value for p in got.points_of("switchboard.turns"))
    assert counted >= taken  # cumulative: the last export has them all
    [transfers] = {p.value for p in got.points_of("switchboard.transfers")}
    assert transfers == 1

    # log records carry the trace and span of the turn they were written in
    by_span = {t.span_id: t for t in turns}
    turn_logs = [r for r in got.logs if r.body == "turn"]
    assert len(turn_logs) == taken
    assert all(r.span_id in by_span and by_span[r.span_id].trace_id == r.trace_id
               for r in turn_logs)
    # and so do the bot's JSON lines
    lines = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    assert {x["span_id"] for x in lines if x["message"] == "turn"} == set(by_span)

    _absent(marker, *got.raw, stderr)


async def test_the_bot_exports_to_application_insights(tmp_path, connector):
    receiver, runner = await start_receiver()
    proxy = _Proxy()
    proxy_app = web.Application()
    proxy_app.router.add_route("*", "/{tail:.*}", proxy.handle)
    proxy_runner = web.AppRunner(proxy_app, access_log=None)
    await proxy_runner.setup()
    proxy_port = free_port()
    await web.TCPSite(proxy_runner, "127.0.0.1", proxy_port).start()
    marker = new_marker()
    try:
        stderr, taken = await _run_bot({
            "APPLICATIONINSIGHTS_CONNECTION_STRING": (
                "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                f"IngestionEndpoint={receiver.url}/"),
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            # the distro samples a few traces a second by default: every one, to count them
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_PYTHON_LOG_HANDLER_LEVEL": "info",
            "HTTP_PROXY": f"http://127.0.0.1:{proxy_port}",
            "HTTPS_PROXY": f"http://127.0.0.1:{proxy_port}",
            "NO_PROXY": "127.0.0.1,localhost",
            **QUIET_AZURE,
        }, tmp_path, connector, marker)
        envelopes: list[dict[str, Any]] = receiver.received.envelopes
        raw = receiver.received.raw
    finally:
        await runner.cleanup()
        await proxy_runner.cleanup()
    assert proxy.requests == []  # nothing went anywhere else
    kinds = {e["data"]["baseType"] for e in envelopes}
    assert {"RequestData", "RemoteDependencyData", "MetricData", "MessageData"} <= kinds, kinds
    turns = [e for e in envelopes if e["data"]["baseType"] == "RemoteDependencyData"
             and e["data"]["baseData"].get("name") == "turn"]
    assert len(turns) == taken
    assert {t["data"]["baseData"]["properties"]["switchboard.department"]
            for t in turns} == {"service-desk", "hr"}
    metrics = {m["name"] for e in envelopes if e["data"]["baseType"] == "MetricData"
               for m in e["data"]["baseData"]["metrics"]}
    assert {"switchboard.turns", "switchboard.store.round_trips"} <= metrics, metrics
    _absent(marker, *raw, stderr)


@pytest.mark.parametrize("values, wanted", [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
     "OTEL_EXPORTER_OTLP_ENDPOINT='localhost:4318': not an http(s) URL"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://:4318/v1/traces"},
     "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT='http://:4318/v1/traces': not an http(s) URL"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': Switchboard exports OTLP over HTTP only"),
    ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "IngestionEndpoint=https://x.example/"},
     "APPLICATIONINSIGHTS_CONNECTION_STRING: has no InstrumentationKey"),
    ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "OTEL_METRIC_EXPORT_INTERVAL='soon'"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin': not an exporter"),
])
def test_a_telemetry_mistake_is_one_line_naming_the_variable(tmp_path, values, wanted):
    env = {**_without_telemetry(clean_env()), **values,
           "SWITCHBOARD_DB_PATH": str(tmp_path / "db.sqlite3"),
           "SWITCHBOARD_PORT": str(free_port())}
    result = subprocess.run([sys.executable, "app.py"],
                            env=env, capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.startswith("switchboard:")]
    assert len(lines) == 1 and wanted in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "db.sqlite3").exists()
