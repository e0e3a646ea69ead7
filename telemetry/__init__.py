"""OpenTelemetry for Switchboard: traces, metrics and logs, exported over OTLP/HTTP and to
Azure Monitor when the environment says so, and next to nothing when it does not.

The rest of the code calls the hooks below, each one line where it happens; see
docs/telemetry.md for what is traced and measured, and what is never recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from telemetry.config import TelemetryError, problems
from telemetry.runtime import span, traced
from telemetry.sends import (
    answered,
    client_trace_configs,
    retrying,
    traced_send,
    undelivered,
    waited,
)
from telemetry.store import traced_store
from telemetry.turns import in_turn, traced_timer, transferred, turn_done, turn_failed

if TYPE_CHECKING:
    import asyncio

    from pipelines.config import SwitchboardConfig
    from storage.agents import AgentStore
    from storage.sessions import SessionStore
    from telemetry.runtime import Active


def configure(environ: Mapping[str, str], *, instance: str) -> Active | None:
    """Set up what the environment asks for (telemetry/setup.py); None: nothing exported."""
    from telemetry.setup import configure as setup

    return setup(environ, instance=instance)


def server_middlewares() -> list[Any]:
    """aiohttp middlewares for the app: the server instrumentation ([] when off)."""
    from telemetry import runtime

    return list(runtime.ACTIVE.server_middlewares) if runtime.ACTIVE else []


def watch_gauges(config: SwitchboardConfig, sessions: SessionStore, agents: AgentStore,
                 clock: Callable[[], float]) -> list[asyncio.Task[None]]:
    """The gauges' reader task ([] when no metric is exported): telemetry/gauges.py."""
    from telemetry import runtime

    if runtime.ACTIVE is None:
        return []
    from telemetry.gauges import watch

    return watch(config, sessions, agents, clock)


__all__ = [
    "TelemetryError",
    "answered",
    "client_trace_configs",
    "configure",
    "in_turn",
    "problems",
    "retrying",
    "server_middlewares",
    "span",
    "traced",
    "traced_send",
    "traced_store",
    "traced_timer",
    "transferred",
    "turn_done",
    "turn_failed",
    "undelivered",
    "waited",
    "watch_gauges",
]
