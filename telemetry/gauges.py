"""The gauges' reading: guests waiting, the longest wait and agents available, per department.

Read from the store, so every instance reports the truth all instances share (aggregate the
series of several instances with max, not sum), and read once per metric export interval
(`OTEL_METRIC_EXPORT_INTERVAL`, 60 s by default), never on a turn's path. Per enabled
department that is one indexed query for its waiting chats (the same query the agents'
`waiting` command makes: its cost grows with the guests waiting now, not with history; at
most WAITING_LIMIT are read), plus one point read per configured agent (each agent once,
whatever their departments). The SDK's export thread then reads the last reading
(telemetry/metrics.py `Gauges`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pipelines.config import SwitchboardConfig
from storage.agents import AgentStore, Presence
from storage.models import Phase, SessionState
from storage.sessions import SessionStore
from telemetry import runtime
from telemetry.metrics import Gauges, Reading

log = logging.getLogger("switchboard.telemetry")

WAITING_LIMIT = 1000


async def read(config: SwitchboardConfig, sessions: SessionStore, agents: AgentStore,
               clock: Callable[[], float]) -> Reading:
    reading = Reading()
    now = clock()
    tenants = [t for t in config.tenants if t.enabled]
    people = {a.aad_object_id for t in tenants for a in t.agents}
    records = await agents.many(people) if people else {}
    for tenant in tenants:
        waiting = await sessions.list(tenant.id, SessionState.OPEN, limit=WAITING_LIMIT,
                                      phase=Phase.WAITING.value)
        reading.waiting[tenant.id] = len(waiting)
        since = [s.routing.started_at for s in waiting if s.routing is not None]
        reading.longest_wait[tenant.id] = round(max(0.0, now - min(since)), 3) if since else 0.0
        available = 0
        for agent in tenant.agents:
            record = records.get(agent.aad_object_id.casefold())
            if record is not None and record.reachable and (
                    record.presence == Presence.AVAILABLE):
                available += 1
        reading.available[tenant.id] = available
    return reading


async def _refresh(gauges: Gauges, interval: float, config: SwitchboardConfig,
                   sessions: SessionStore, agents: AgentStore,
                   clock: Callable[[], float]) -> None:
    failing = False
    while True:
        try:
            gauges.reading = await read(config, sessions, agents, clock)
            failing = False
        except Exception as exc:  # the store may be briefly unavailable: no reading then
            gauges.reading = None
            if not failing:
                log.warning("could not read the gauges from the store",
                            extra={"reason": type(exc).__name__})
            failing = True
        await asyncio.sleep(interval)


def watch(config: SwitchboardConfig, sessions: SessionStore, agents: AgentStore,
          clock: Callable[[], float]) -> list[asyncio.Task[None]]:
    """The task that keeps the gauges' reading fresh ([] when no metric is exported)."""
    active = runtime.ACTIVE
    if active is None or active.meter_provider is None:
        return []
    return [asyncio.get_running_loop().create_task(
        _refresh(active.gauges, active.metric_interval, config, sessions, agents, clock),
        name="telemetry-gauges")]
