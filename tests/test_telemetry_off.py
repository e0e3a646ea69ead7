"""With nothing to export, telemetry sets nothing up: no SDK provider, not even the SDK
imported, and every hook hands back what it was given. And how the environment is read."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace

import telemetry
from telemetry import config, runtime
from telemetry.config import ExportPlan, plan
from tests.bot_process import ROOT

OFF_CHECK = textwrap.dedent("""
    import asyncio, os, sys, tempfile
    from pathlib import Path
    for name in list(os.environ):
        if name.startswith(("OTEL_", "APPLICATIONINSIGHTS_")):
            del os.environ[name]
    import telemetry
    assert telemetry.configure(os.environ, instance="off") is None
    from tests import teams
    from tests.connector import start_connector
    from tests.harness import BotServer, Chat, settings_for, texts

    async def main():
        connector, runner = await start_connector()
        bot = await BotServer(settings_for(Path(tempfile.mkdtemp()))).start()
        chat = Chat(teams.TeamsUser.make("Ada"), bot, connector)
        assert "welcome" in texts(await chat.say("hi"))
        await chat.answer("I need to change my parental leave dates")
        await bot.stop()
        await runner.cleanup()

    asyncio.run(main())
    loaded = sorted(m for m in sys.modules if m.startswith(
        ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation",
         "azure.monitor")))
    print("LOADED", loaded)
""")


def test_with_nothing_to_export_the_sdk_is_not_even_loaded():
    result = subprocess.run([sys.executable, "-c", OFF_CHECK], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED []" in result.stdout, result.stdout


def test_with_nothing_to_export_every_hook_hands_back_its_input():
    assert runtime.ACTIVE is None
    assert telemetry.configure({}, instance="x") is None
    assert not hasattr(trace.get_tracer_provider(), "add_span_processor")  # the API's proxy
    sentinel = object()
    assert telemetry.traced_store(sentinel) is sentinel

    async def turn() -> None:
        return None

    coro = turn()
    assert telemetry.in_turn(coro, sentinel) is coro
    coro.close()

    async def handler(timer) -> None:
        return None

    assert telemetry.traced_timer(handler, lambda: 0.0) is handler
    assert telemetry.server_middlewares() == []
    assert telemetry.client_trace_configs() is None
    assert telemetry.watch_gauges(None, None, None, None) == []


@pytest.mark.parametrize("environ, expected", [
    ({}, ExportPlan()),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
     ExportPlan(otlp=frozenset({"traces", "metrics", "logs"}))),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example/v1/traces"},
     ExportPlan(otlp=frozenset({"traces"}))),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_LOGS_EXPORTER": "none",
      "OTEL_METRIC_EXPORT_INTERVAL": "15000"},
     ExportPlan(otlp=frozenset({"traces", "metrics"}), metric_interval=15.0)),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
     ExportPlan()),
    # a few turns a second unless the sampler is named; warnings unless a level is
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
      "OTEL_TRACES_SAMPLER": "parentbased_always_on", "OTEL_PYTHON_LOG_HANDLER_LEVEL": "info"},
     ExportPlan(otlp=frozenset({"traces", "metrics", "logs"}), traces_per_second=None,
                log_level=20)),
    ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=abc;IngestionEndpoint="
      "https://westeurope-5.in.applicationinsights.azure.com/", "OTEL_METRICS_EXPORTER": "none"},
     ExportPlan(azure_monitor="InstrumentationKey=abc;IngestionEndpoint=https://westeurope-5.in"
                ".applicationinsights.azure.com/", azure_signals=frozenset({"traces", "logs"}))),
])
def test_the_standard_variables_decide_what_is_exported(environ, expected):
    assert plan(environ) == expected
    assert ExportPlan().traces_per_second == 5.0 and ExportPlan().log_level == 30


def test_by_default_a_few_turns_a_second_are_traced_and_a_sampled_caller_always_is():
    """Every turn while they are few, about 5 a second when there are many; always a turn
    whose caller sampled its trace, never one whose caller did not."""
    from opentelemetry import context
    from opentelemetry.sdk.trace.sampling import ParentBased
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    from telemetry.sampling import RateLimited, default_sampler

    rate = plan({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}).traces_per_second
    assert rate == 5.0
    now = [0.0]
    sampler = ParentBased(RateLimited(rate, clock=lambda: now[0]))
    assert "RateLimited{5.0/s}" in default_sampler(rate).get_description()

    def sampled(count: int, step: float) -> int:
        taken = 0
        for i in range(count):
            now[0] += step
            taken += sampler.should_sample(None, (5 << 64) | i, "turn").decision.is_sampled()
        return taken

    assert sampled(20, step=0.25) == 20  # 4 a second: each one
    assert sampled(10_000, step=0.001) in range(50, 56)  # 1,000 a second for 10 s: 5 a second
    assert sampled(1_000, step=0.01) in range(50, 52)  # 100 a second for 10 s: the same
    now[0] += 60  # a quiet minute refills one second's worth, not more
    assert sampled(100, step=0.0) == 5
    remote = SpanContext(7, 9, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    parent = set_span_in_context(NonRecordingSpan(remote), context.Context())
    assert all(sampler.should_sample(parent, 7, "turn").decision.is_sampled()
               for _ in range(100))
    unsampled = SpanContext(7, 9, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    parent = set_span_in_context(NonRecordingSpan(unsampled), context.Context())
    assert not any(sampler.should_sample(parent, 7, "turn").decision.is_sampled()
                   for _ in range(100))


def test_a_missing_package_is_named_with_its_variable(monkeypatch):
    monkeypatch.setattr(config, "_installed", lambda module: False)
    problems = config.problems({
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=abc",
    })
    assert problems == [
        "OTEL_EXPORTER_OTLP_ENDPOINT is set, but the package "
        "opentelemetry-exporter-otlp-proto-http is not installed: install Switchboard with its "
        "dependencies (pip install -e .), or unset it",
        "APPLICATIONINSIGHTS_CONNECTION_STRING is set, but the package "
        "azure-monitor-opentelemetry is not installed: install Switchboard with its "
        "dependencies (pip install -e .), or unset it",
    ]


def test_the_packages_are_installed():
    assert config._installed("opentelemetry.exporter.otlp.proto.http")
    assert config._installed("azure.monitor.opentelemetry")
