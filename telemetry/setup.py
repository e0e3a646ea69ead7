"""Set up OpenTelemetry from the environment: providers, exporters, the log handler.

Called once by app.py's `main()`, after the settings are checked and before the app is made.
With nothing to export it does nothing at all: no SDK provider is made, the API stays a
no-op, and every hook of Switchboard's is a check of one global (telemetry/runtime.py).

- OTLP/HTTP only: the SDK's tracer, meter and logger providers, each with the OTLP exporter
  (which reads the standard OTEL_EXPORTER_OTLP_* variables itself), batched.
- Azure Monitor (`APPLICATIONINSIGHTS_CONNECTION_STRING`): `configure_azure_monitor` from
  azure-monitor-opentelemetry makes the providers (its exporters, its sampler, its
  instrumentation of `requests` and urllib); the OTLP exporters, when set as well, are added
  to them.

Either way the providers are also made global, so that libraries which trace or measure
through the OpenTelemetry API (azure-core, msal's `requests`) report to the same place.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from telemetry import runtime
from telemetry.config import ExportPlan, plan

SERVICE = "switchboard"


def _resource(environ: Mapping[str, str], instance: str) -> Any:
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, str] = {"service.instance.id": instance}
    with contextlib.suppress(metadata.PackageNotFoundError):
        attributes["service.version"] = metadata.version("switchboard")
    if not environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = SERVICE
    return Resource.create(attributes)  # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME too


def _otlp(export: ExportPlan) -> tuple[list[Any], list[Any], list[Any]]:
    """Span processors, metric readers and log processors for the OTLP exporters."""
    spans: list[Any] = []
    readers: list[Any] = []
    logs: list[Any] = []
    if "traces" in export.otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        spans.append(BatchSpanProcessor(OTLPSpanExporter()))
    if "metrics" in export.otlp:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    if "logs" in export.otlp:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        logs.append(BatchLogRecordProcessor(OTLPLogExporter()))
    return spans, readers, logs


def _azure_monitor(export: ExportPlan, resource: Any, spans: list[Any], readers: list[Any],
                   logs: list[Any]) -> tuple[Any, Any]:
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import metrics, trace

    configure_azure_monitor(
        connection_string=export.azure_monitor,
        resource=resource,
        span_processors=spans,
        metric_readers=readers,
        log_record_processors=logs,
        disable_tracing="traces" not in export.azure_signals,
        disable_metrics="metrics" not in export.azure_signals,
        disable_logging="logs" not in export.azure_signals,
        # Live Metrics streams to its own endpoint, outside what the connection string names
        enable_live_metrics=False,
        # aiohttp is traced by telemetry/http.py, for our app and our sends only; the store's
        # calls by telemetry/store.py (the Azure SDK's own spans would repeat them, and make
        # a root span of every timer poll, a second)
        instrumentation_options={name: {"enabled": False} for name in (
            "azure_sdk", "django", "fastapi", "flask", "psycopg2")},
    )
    tracer_provider = trace.get_tracer_provider() if export.exports("traces") else None
    meter_provider = metrics.get_meter_provider() if export.exports("metrics") else None
    return tracer_provider, meter_provider


def _own_providers(export: ExportPlan, resource: Any, spans: list[Any], readers: list[Any],
                   logs: list[Any]) -> tuple[Any, Any]:
    from opentelemetry import metrics, trace

    tracer_provider = meter_provider = None
    if spans:
        from opentelemetry.sdk.trace import TracerProvider

        from telemetry.sampling import default_sampler

        # None: the SDK's, as OTEL_TRACES_SAMPLER names it
        sampler = (default_sampler(export.traces_per_second)
                   if export.traces_per_second is not None else None)
        tracer_provider = TracerProvider(resource=resource, sampler=sampler)
        for processor in spans:
            tracer_provider.add_span_processor(processor)
        trace.set_tracer_provider(tracer_provider)
    if readers:
        from opentelemetry.sdk.metrics import MeterProvider

        meter_provider = MeterProvider(metric_readers=readers, resource=resource)
        metrics.set_meter_provider(meter_provider)
    if logs:
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
        from opentelemetry.sdk._logs import LoggerProvider

        logger_provider = LoggerProvider(resource=resource)
        for processor in logs:
            logger_provider.add_log_record_processor(processor)
        set_logger_provider(logger_provider)
        logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
    return tracer_provider, meter_provider


def _export_level(level: int) -> None:
    """The OpenTelemetry log handlers (ours, or the Azure Monitor distro's) export records
    of this level and above."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, LoggingHandler):
            handler.setLevel(level)


def configure(environ: Mapping[str, str], *, instance: str) -> runtime.Active | None:
    """Set up what the environment asks for; None when nothing is exported. Raises
    TelemetryError (one line per mistake) when the variables are wrong."""
    export = plan(environ)
    if not export.any:
        return None
    resource = _resource(environ, instance)
    spans, readers, logs = _otlp(export)
    if export.azure_monitor:
        tracer_provider, meter_provider = _azure_monitor(export, resource, spans, readers,
                                                         logs)
    else:
        tracer_provider, meter_provider = _own_providers(export, resource, spans, readers,
                                                         logs)
    _export_level(export.log_level)
    return runtime.install(tracer_provider, meter_provider,
                           metric_interval=export.metric_interval,
                           http_attempts=export.http_attempts)
