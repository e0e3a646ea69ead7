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

from console.figures import Tail, local_day, slots, zone
from pipelines.config import SwitchboardConfig, TenantConfig
from pipelines.routing.skills import describe
from storage.agents import AgentStore
from storage.documents import DocumentStore
from storage.layout import TENANT_DATA
from storage.models import Phase, SessionState
from storage.sessions import SessionStore
from storage.stats import Counts

# open chats listed per department and phase, at most (the count says "1000+" past it)
LIST_LIMIT = 1000
# guests in a pipeline are read newest first until one is idle, in pages of the last
# refresh's count plus this (the store bounds a query from above only: a page reads this
# many idle chats at most)
SLACK = 10


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
        self._in_pipeline: dict[str, int] = {}
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

    async def _open(self, tenant_id: str, phase: Phase, fresh_after: str | None = None
                    ) -> tuple[list[dict[str, Any]], bool]:
        """The department's open chats in a phase, newest first, as stored (no model is
        built: a refresh reads many); with `fresh_after`, only those written since, read a
        page at a time until one is older. True when LIST_LIMIT cut the list."""
        out: list[dict[str, Any]] = []
        page = min(LIST_LIMIT, self._in_pipeline.get(tenant_id, 0) + SLACK) if fresh_after \
            else LIST_LIMIT
        seen: set[str] = set()
        bound: str | None = None
        skip = 0  # chats at `bound` already read (equal times come back in id order)
        while len(out) < LIST_LIMIT:
            limit = skip + page
            found = await self.docs.query(
                TENANT_DATA, (tenant_id,),
                {"type": "session", "state": SessionState.OPEN.value, "phase": phase.value},
                order_by="updated_at", descending=True, limit=limit,
                at_most={"updated_at": bound} if bound else None)
            fresh = [d.body for d in found if d.id not in seen]
            for body in fresh:
                if fresh_after and str(body.get("updated_at", "")) < fresh_after:
                    return out, False
                seen.add(str(body.get("id")))
                out.append(body)
            if len(found) < limit or not fresh:
                return out, False
            bound = str(fresh[-1].get("updated_at"))
            skip = sum(1 for d in found if str(d.body.get("updated_at")) == bound)
        return out[:LIST_LIMIT], True

    async def _department(self, tenant: TenantConfig, records: dict, now: datetime
                          ) -> dict[str, Any]:
        clock = self.clock()
        fresh_after = (now - self.idle).isoformat(timespec="milliseconds")
        in_pipeline, capped = await self._open(tenant.id, Phase.PIPELINE, fresh_after)
        self._in_pipeline[tenant.id] = len(in_pipeline)
        waiting_docs, _ = await self._open(tenant.id, Phase.WAITING)
        connected_docs, _ = await self._open(tenant.id, Phase.CONNECTED)
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
                             self._tails.setdefault(tenant.id, Tail()))
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
