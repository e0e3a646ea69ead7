"""The live view: every department's chats and agents now, and its figures for the last hour
and today, computed once per refresh interval for every console open on this instance.

What it reads, per department: the open chats that changed since the last refresh
(console/open_chats.py: an indexed query whose answer grows with the chats written in the
last seconds, never with history; every minute the open chats in each phase again), the
figures (storage/stats.py, console/figures.py: one query of rollups, the cursor, a short walk
of the waits, the sessions opened and closed taken from the open chats' read), and the
agents' records (one point read per agent in the config). Twenty consoles cost what one
costs: each gets the same snapshot, cut to the departments it may see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from console.figures import Tail, local_day, slots, zone
from console.open_chats import OpenChats
from pipelines.config import SwitchboardConfig, TenantConfig
from pipelines.routing.skills import describe
from storage.agents import AgentStore
from storage.documents import DocumentStore
from storage.models import Phase
from storage.sessions import SessionStore
from storage.stats import Counts


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
        self._tails: dict[str, Tail] = {}
        self._open: dict[str, OpenChats] = {}
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
        fresh_after = (now - self.idle).isoformat(timespec="milliseconds")
        chats = self._open.setdefault(tenant.id, OpenChats(tenant.id))
        changed = await chats.refresh(self.docs, now, fresh_after, time.monotonic())
        lists = chats.lists(fresh_after)
        in_pipeline = lists[Phase.PIPELINE.value]
        capped = Phase.PIPELINE in chats.cut
        waiting_docs = lists[Phase.WAITING.value]
        connected_docs = lists[Phase.CONNECTED.value]
        by_stage: dict[str, int] = {}
        for body in in_pipeline:
            stage = str(body.get("stage_key") or "?")
            by_stage[stage] = by_stage.get(stage, 0) + 1
        waiting = sorted((_waiting(b, clock) for b in waiting_docs), key=lambda w: -w["waited"])
        connected = [_connected(b) for b in connected_docs]
        by_agent: dict[str, int] = {}
        for chat in connected:
            by_agent[chat["agent"]] = by_agent.get(chat["agent"], 0) + 1
        tz = zone(tenant.timezone)
        today_start, _ = local_day(now.astimezone(tz).date(), tz)
        hour_start = now - timedelta(hours=1)
        window = await slots(self.docs, tenant.id, min(today_start, hour_start),
                             now + timedelta(minutes=10), self.ratings, now,
                             self._tails.setdefault(tenant.id, Tail()), changed)
        agents = []
        for agent in tenant.agents:
            record = records.get(agent.aad_object_id.casefold())
            agents.append({
                "id": agent.aad_object_id, "name": agent.name,
                "presence": record.presence.value if record else "offline",
                "reachable": bool(record and record.reachable),
                "load": record.load() if record else 0,
                "capacity": tenant.capacity_of(agent),
                "skills": describe(agent.skills),
            })
        return {
            "id": tenant.id, "name": tenant.name, "enabled": tenant.enabled,
            "timezone": tenant.timezone or "UTC",
            "pipeline": {"count": len(in_pipeline), "by_stage": by_stage,
                         "guests": [_in_pipeline(b) for b in in_pipeline[:200]],
                         "capped": capped},
            "waiting": {"count": len(waiting),
                        "longest": waiting[0]["waited"] if waiting else 0,
                        "guests": waiting},
            "connected": {"count": len(connected), "by_agent": by_agent, "chats": connected},
            "agents": agents,
            "catching_up": window.behind,
            "hour": summary(window.between(hour_start, now + timedelta(minutes=10))),
            "today": summary(window.between(today_start, now + timedelta(minutes=10))),
        }


def _guest(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("Guest.Name") or "the guest")


def _waiting(body: dict[str, Any], clock: float) -> dict[str, Any]:
    routing = body.get("routing") or {}
    started = float(routing.get("started_at") or clock)
    return {"session": body["id"], "tenant": body["tenantId"], "guest": _guest(body),
            "waited": max(0.0, clock - started),
            "offered": [str(o.get("agent_name")) for o in routing.get("offers") or []
                        if o.get("status") == "open"]}


def _connected(body: dict[str, Any]) -> dict[str, Any]:
    agent = body.get("agent") or {}
    return {"session": body["id"], "tenant": body["tenantId"], "guest": _guest(body),
            "agent": str(agent.get("agent_name") or "?"), "agent_id": agent.get("agent_id"),
            "since": agent.get("since")}


def _in_pipeline(body: dict[str, Any]) -> dict[str, Any]:
    return {"session": body["id"], "tenant": body["tenantId"], "guest": _guest(body),
            "stage": body.get("stage_key"), "updated": body.get("updated_at")}


def for_viewer(snapshot: dict[str, Any], may: Callable[[str], bool]) -> dict[str, Any]:
    """The snapshot cut to the departments a viewer may see."""
    return {**snapshot, "departments": {k: v for k, v in snapshot["departments"].items()
                                        if may(k)}}
