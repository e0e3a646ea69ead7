"""Where telemetry goes, read from the standard environment variables and checked at start.

OTLP over HTTP is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or a signal's own
`OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`) is set; Azure Monitor when
`APPLICATIONINSIGHTS_CONNECTION_STRING` is. `OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none` turns a
signal off, `OTEL_SDK_DISABLED=true` all of them. With nothing to export, nothing is set up.

A mistake (an endpoint that is not an http(s) URL, a protocol this build cannot speak, a
connection string without its key, a package that is not installed) is one line naming the
variable and the fix, reported with the other settings' mistakes (settings.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

SIGNALS = ("traces", "metrics", "logs")
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
AZURE_MONITOR = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# every variable this module reads (the deployment test compares them with infra/'s settings)
VARIABLES = (
    OTLP_ENDPOINT,
    *(f"OTEL_EXPORTER_OTLP_{s.upper()}_ENDPOINT" for s in SIGNALS),
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    *(f"OTEL_EXPORTER_OTLP_{s.upper()}_PROTOCOL" for s in SIGNALS),
    *(f"OTEL_{s.upper()}_EXPORTER" for s in SIGNALS),
    "OTEL_SDK_DISABLED",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_PYTHON_LOG_HANDLER_LEVEL",
    AZURE_MONITOR,
)
DEFAULT_METRIC_INTERVAL = 60.0  # seconds, the SDK's default
HTTP_ATTEMPTS = "SWITCHBOARD_TRACE_HTTP_ATTEMPTS"
# without OTEL_TRACES_SAMPLER: at most about this many turns a second are traced, each one
# while there are fewer (a trace the caller sampled always is). A traced turn costs about
# twice an untraced one: a rate, unlike a ratio, bounds what tracing costs at any load
# (docs/telemetry.md)
DEFAULT_TRACES_PER_SECOND = 5.0
# without OTEL_PYTHON_LOG_HANDLER_LEVEL: warnings and errors are exported (the INFO line of
# each turn says what the turn's span and metrics say)
LOG_LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}
DEFAULT_LOG_LEVEL = "warning"


class TelemetryError(Exception):
    """What is wrong with the telemetry variables: one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ExportPlan:
    """Which signals go where. Empty when nothing is exported."""

    otlp: frozenset[str] = frozenset()  # signals sent over OTLP/HTTP
    azure_monitor: str = ""  # the connection string; "" = off
    azure_signals: frozenset[str] = frozenset()
    metric_interval: float = DEFAULT_METRIC_INTERVAL  # seconds
    # None: OTEL_TRACES_SAMPLER decides (the SDK reads it); else the traces a second
    # Switchboard samples at most (telemetry/sampling.py `default_sampler`)
    traces_per_second: float | None = DEFAULT_TRACES_PER_SECOND
    log_level: int = LOG_LEVELS[DEFAULT_LOG_LEVEL]  # of the records exported
    # a CLIENT span per HTTP attempt to the Bot Connector (aiohttp-client's instrumentation):
    # off unless SWITCHBOARD_TRACE_HTTP_ATTEMPTS=true, as it costs about a tenth of the
    # turns/s even on turns not sampled; each `send` span says its attempts either way
    http_attempts: bool = False

    @property
    def any(self) -> bool:
        return bool(self.otlp or self.azure_signals)

    def exports(self, signal: str) -> bool:
        return signal in self.otlp or signal in self.azure_signals


def _url_problem(name: str, value: str) -> str | None:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return (f"{name}={value!r}: not an http(s) URL: set it to the OTLP/HTTP collector's "
                f"address, e.g. http://localhost:4318")
    return None


def _off(environ: Mapping[str, str], signal: str) -> bool:
    value = environ.get(f"OTEL_{signal.upper()}_EXPORTER", "")
    return [name.strip().lower() for name in value.split(",")] == ["none"]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def plan(environ: Mapping[str, str]) -> ExportPlan:
    """The export plan, or TelemetryError listing every mistake."""
    problems: list[str] = []
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ExportPlan()
    for signal in SIGNALS:
        exporter = environ.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower()
        if exporter and exporter not in ("none", "otlp"):
            problems.append(
                f"OTEL_{signal.upper()}_EXPORTER={exporter!r}: not an exporter Switchboard "
                f"ships: use otlp (with OTEL_EXPORTER_OTLP_ENDPOINT) or none")
    otlp: set[str] = set()
    base = environ.get(OTLP_ENDPOINT, "").strip()
    if base:
        problem = _url_problem(OTLP_ENDPOINT, base)
        if problem:
            problems.append(problem)
    for signal in SIGNALS:
        name = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        own = environ.get(name, "").strip()
        if own:
            problem = _url_problem(name, own)
            if problem:
                problems.append(problem)
        if (own or base) and not _off(environ, signal):
            otlp.add(signal)
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL",
                 *(f"OTEL_EXPORTER_OTLP_{s.upper()}_PROTOCOL" for s in SIGNALS)):
        protocol = environ.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            problems.append(f"{name}={protocol!r}: Switchboard exports OTLP over HTTP only: "
                            f"use http/protobuf (port 4318 on most collectors)")
    if otlp and not _installed("opentelemetry.exporter.otlp.proto.http"):
        problems.append(f"{OTLP_ENDPOINT} is set, but the package "
                        f"opentelemetry-exporter-otlp-proto-http is not installed: install "
                        f"Switchboard with its dependencies (pip install -e .), or unset it")
    connection = environ.get(AZURE_MONITOR, "").strip()
    azure: set[str] = set()
    if connection:
        fields = dict(part.split("=", 1) for part in connection.split(";") if "=" in part)
        keys = {k.strip().lower(): v.strip() for k, v in fields.items()}
        if not keys.get("instrumentationkey"):
            problems.append(f"{AZURE_MONITOR}: has no InstrumentationKey=...: copy the whole "
                            f"connection string from the Application Insights resource")
        endpoint = keys.get("ingestionendpoint")
        if endpoint and _url_problem(AZURE_MONITOR, endpoint):
            problems.append(f"{AZURE_MONITOR}: IngestionEndpoint={endpoint!r} is not an "
                            f"http(s) URL: copy the whole connection string from the "
                            f"Application Insights resource")
        if not _installed("azure.monitor.opentelemetry"):
            problems.append(f"{AZURE_MONITOR} is set, but the package "
                            f"azure-monitor-opentelemetry is not installed: install Switchboard "
                            f"with its dependencies (pip install -e .), or unset it")
        azure = {s for s in SIGNALS if not _off(environ, s)}
    interval = DEFAULT_METRIC_INTERVAL
    raw = environ.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip()
    if raw:
        try:
            interval = float(raw) / 1000
            if not 0 < interval <= 86_400:
                raise ValueError
        except ValueError:
            problems.append(f"OTEL_METRIC_EXPORT_INTERVAL={raw!r}: not a duration: use "
                            f"milliseconds, more than 0 (default 60000)")
    level = environ.get("OTEL_PYTHON_LOG_HANDLER_LEVEL", "").strip().lower() or DEFAULT_LOG_LEVEL
    if level not in LOG_LEVELS:
        problems.append(f"OTEL_PYTHON_LOG_HANDLER_LEVEL={level!r}: not a level: use debug, "
                        f"info, warning or error (default {DEFAULT_LOG_LEVEL})")
    attempts = environ.get(HTTP_ATTEMPTS, "").strip().lower()
    if attempts not in ("", "true", "false"):
        problems.append(f"{HTTP_ATTEMPTS}={attempts!r}: use true or false (default false: "
                        f"each send's span counts its attempts, with no span of its own)")
    if problems:
        raise TelemetryError(problems)
    rate = None if environ.get("OTEL_TRACES_SAMPLER", "").strip() else DEFAULT_TRACES_PER_SECOND
    return ExportPlan(frozenset(otlp), connection, frozenset(azure), interval, rate,
                      LOG_LEVELS.get(level, 30), attempts == "true")


def problems(environ: Mapping[str, str]) -> list[str]:
    """The mistakes in the telemetry variables, one line each (none: [])."""
    try:
        plan(environ)
    except TelemetryError as exc:
        return exc.problems
    return []
