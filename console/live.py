"""The live view: every department's chats and agents now, and its figures for the last hour
and today, computed once per refresh interval for every console open on this instance.

What it reads, per department: the open chats in each phase (three indexed queries whose
answers grow with the open chats, never with history), the figures (storage/stats.py,
console/figures.py: one query of rollups, the cursor, three short feed walks), and the
agents' records (one point read per agent in the config). Twenty consoles cost what one
costs: each gets the same snapshot, cut to the departments it may see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from console.figures import local_day, slots, zone
from pipelines.config import SwitchboardConfig, TenantConfig
from pipelines.routing.common import guest_name
from storage.agents import AgentStore
from storage.documents import DocumentStore
from storage.models import Phase, Session, SessionState
from storage.sessions import SessionStore
from storage.stats import Counts

# open chats listed per department and phase, at most (the count says "1000+" past it)
LIST_LIMIT = 1000


def summary(counts: Counts) -> dict[str, Any]:
    """The figures a supervisor reads, from counts over a window."""
    return {
        "started": counts.started,
        "received": counts.received,
        "received_total": sum(counts.received.values()),
        "sent": counts.sent,
        "sent_total": sum(counts.sent.values()),
        "deflected": counts.deflected,
        "closed": counts.closed,
        "answered": counts.answered,
        "abandoned": counts.abandoned,
        "timed_out": counts.timed_out,
        "speed_to_answer": counts.speed_to_answer,
        "p90_wait": _finite(counts.wait_percentile(0.9)),
        "feedback": counts.feedback,
        "rated": counts.rated,
    }


def _finite(value: float | None) -> float | str | None:
    if value is not None and value == float("inf"):
        return "over 1 h"
    return value


def rating_keys(config: SwitchboardConfig) -> tuple[str, ...]:
    """Where feedback stages keep their rating (`<prefix>.Rating`)."""
    keys: dict[str, None] = {}
    for tenant in config.tenants:
        for pipeline in tenant.pipelines:
            for stage in pipeline.stages:
                if stage.action == "feedback":
                    keys.setdefault(f"{getattr(stage, 'prefix', 'Feedback')}.Rating")
    return tuple(keys) or ("Feedback.Rating",)


class Board:
    def __init__(self, config: SwitchboardConfig, docs: DocumentStore, sessions: SessionStore,
                 agents: AgentStore, *, refresh: float = 2.0, idle_minutes: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.docs = docs
        self.sessions = sessions
        self.agents = agents
        self.refresh_seconds = refresh
        self.idle = timedelta(minutes=idle_minutes)
        self.clock = clock
        self.ratings = rating_keys(config)
        self._snapshot: dict[str, Any] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()
        # bumped by every supervisor action, so the next read does not wait a refresh
        self.version = 0

    async def snapshot(self) -> dict[str, Any]:
        """Every department now; recomputed at most once per refresh interval."""
        async with self._lock:
            if self._snapshot is None or time.monotonic() - self._at >= self.refresh_seconds:
                self._snapshot = await self.compute()
                self._at = time.monotonic()
            return self._snapshot

    def invalidate(self) -> None:
        self._snapshot = None
        self.version += 1

    async def compute(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        records = await self.agents.many(a.aad_object_id for t in self.config.tenants
                                         for a in t.agents)
        departments = {}
        for tenant in self.config.tenants:
            departments[tenant.id] = await self._department(tenant, records, now)
        return {"at": now.isoformat(timespec="seconds"), "clock": self.clock(),
                "departments": departments}

    async def _department(self, tenant: TenantConfig, records: dict, now: datetime
                          ) -> dict[str, Any]:
        clock = self.clock()
        lists = {}
        for phase in Phase:
            lists[phase] = await self.sessions.list(tenant.id, SessionState.OPEN,
                                                    limit=LIST_LIMIT, phase=phase.value)
        fresh_after = (now - self.idle).isoformat(timespec="milliseconds")
        in_pipeline = [s for s in lists[Phase.PIPELINE] if s.updated_at >= fresh_after]
        by_stage: dict[str, int] = {}
        for session in in_pipeline:
            by_stage[session.stage_key or "?"] = by_stage.get(session.stage_key or "?", 0) + 1
        waiting = sorted((_waiting(s, clock) for s in lists[Phase.WAITING]),
                         key=lambda w: -w["waited"])
        connected = [_connected(s) for s in lists[Phase.CONNECTED]]
        by_agent: dict[str, int] = {}
        for chat in connected:
            by_agent[chat["agent"]] = by_agent.get(chat["agent"], 0) + 1
        tz = zone(tenant.timezone)
        today_start, _ = local_day(now.astimezone(tz).date(), tz)
        hour_start = now - timedelta(hours=1)
        window = await slots(self.docs, tenant.id, min(today_start, hour_start),
                             now + timedelta(minutes=10), self.ratings, now)
        agents = []
        for agent in tenant.agents:
            record = records.get(agent.aad_object_id.casefold())
            agents.append({
                "id": agent.aad_object_id, "name": agent.name,
                "presence": record.presence.value if record else "offline",
                "reachable": bool(record and record.reachable),
                "load": record.load() if record else 0,
                "capacity": tenant.capacity_of(agent),
            })
        return {
            "id": tenant.id, "name": tenant.name, "enabled": tenant.enabled,
            "timezone": tenant.timezone or "UTC",
            "pipeline": {"count": len(in_pipeline), "by_stage": by_stage,
                         "guests": [_in_pipeline(s) for s in in_pipeline[:200]],
                         "capped": len(lists[Phase.PIPELINE]) >= LIST_LIMIT},
            "waiting": {"count": len(waiting),
                        "longest": waiting[0]["waited"] if waiting else 0,
                        "guests": waiting},
            "connected": {"count": len(connected), "by_agent": by_agent, "chats": connected},
            "agents": agents,
            "hour": summary(window.between(hour_start, now + timedelta(minutes=10))),
            "today": summary(window.between(today_start, now + timedelta(minutes=10))),
        }


def _waiting(session: Session, clock: float) -> dict[str, Any]:
    started = session.routing.started_at if session.routing else clock
    return {"session": session.id, "tenant": session.tenant_id, "guest": guest_name(session),
            "waited": max(0.0, clock - started),
            "offered": [o.agent_name for o in (session.routing.offers if session.routing
                                               else []) if o.status == "open"]}


def _connected(session: Session) -> dict[str, Any]:
    agent = session.agent
    return {"session": session.id, "tenant": session.tenant_id, "guest": guest_name(session),
            "agent": agent.agent_name if agent else "?",
            "agent_id": agent.agent_id if agent else None,
            "since": agent.since if agent else None}


def _in_pipeline(session: Session) -> dict[str, Any]:
    return {"session": session.id, "tenant": session.tenant_id, "guest": guest_name(session),
            "stage": session.stage_key, "updated": session.updated_at}


def for_viewer(snapshot: dict[str, Any], may: Callable[[str], bool]) -> dict[str, Any]:
    """The snapshot cut to the departments a viewer may see."""
    return {**snapshot, "departments": {k: v for k, v in snapshot["departments"].items()
                                        if may(k)}}
