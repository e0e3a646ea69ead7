"""Reports: per day and department, from the rollups (one query per department, whatever
the history), as rows for a table, a chart and CSV; and the live view's figures for a date
range (the same summary as its last hour and today, over the range's days).

A department's days are its own calendar days (its `timezone`, else UTC), each a sum of
whole ten-minute slots (storage/stats.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from console.auth import Viewer
from console.figures import Figures, local_day, slots, zone
from console.live import rating_keys, summary
from pipelines.config import SwitchboardConfig, TenantConfig
from storage.documents import DocumentStore

MAX_DAYS = 92
# no chat is older than this; with the 92-day bound it keeps every day's window computable
# (a year-1 or year-9999 date would overflow its time zone's arithmetic)
FIRST_DAY = date(2000, 1, 1)
COLUMNS = ("day", "department", "started", "received", "deflected", "transferred",
           "abandoned", "timed_out", "answered", "speed_to_answer_s", "p90_wait_s",
           "feedback", "rated")


class RangeError(ValueError):
    """A date range a supervisor typed that cannot be reported."""


def parse_range(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """`from`/`to` (YYYY-MM-DD, inclusive); default the last 7 days."""
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=6)
    except ValueError:
        raise RangeError("Dates are written YYYY-MM-DD, like 2026-01-21.") from None
    if first > last:
        raise RangeError("The range starts after it ends.")
    if (last - first).days >= MAX_DAYS:
        raise RangeError(f"A range covers at most {MAX_DAYS} days.")
    # a department east of UTC may be a day ahead of `today` (UTC)
    if first < FIRST_DAY or last > today + timedelta(days=1):
        raise RangeError(f"Dates run from {FIRST_DAY.isoformat()} to today.")
    return first, last


@dataclass
class Window:
    """A department's slots over a range of its own calendar days."""

    tenant: TenantConfig
    tz: ZoneInfo
    start: datetime
    end: datetime
    slots: Figures


class Reports:
    def __init__(self, config: SwitchboardConfig, docs: DocumentStore) -> None:
        self.config = config
        self.docs = docs
        self.ratings = rating_keys(config)

    async def _windows(self, viewer: Viewer, first: date, last: date, tenant: str | None
                       ) -> AsyncIterator[Window]:
        """Each department the viewer may see (or `tenant`): one query of its rollups, and
        its feeds past the fold's cursor when the range reaches today."""
        now = datetime.now(UTC)
        for config in self.config.tenants:
            if not viewer.may(config.id) or (tenant and tenant != config.id):
                continue
            tz = zone(config.timezone)
            start, _ = local_day(first, tz)
            _, end = local_day(last, tz)
            yield Window(config, tz, start, end,
                         await slots(self.docs, config.id, start, end, self.ratings, now))

    async def figures(self, viewer: Viewer, first: date, last: date,
                      tenant: str | None = None) -> dict[str, Any]:
        """The live view's figures over a date range, per department."""
        departments = {}
        async for w in self._windows(viewer, first, last, tenant):
            departments[w.tenant.id] = {
                "name": w.tenant.name, "timezone": w.tenant.timezone or "UTC",
                "catching_up": w.slots.behind,
                "figures": summary(w.slots.between(w.start, w.end))}
        return {"from": first.isoformat(), "to": last.isoformat(),
                "departments": departments}

    async def days(self, viewer: Viewer, first: date, last: date,
                   tenant: str | None = None) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        matrix: dict[str, dict[str, int]] = {}
        totals: dict[str, dict[str, Any]] = {}
        async for w in self._windows(viewer, first, last, tenant):
            config, tz, window = w.tenant, w.tz, w.slots
            totals[config.id] = summary(window.between(w.start, w.end))
            day = first
            while day <= last:
                counts = window.between(*local_day(day, tz))
                p90 = counts.wait_percentile(0.9)
                rows.append({
                    "day": day.isoformat(), "department": config.name, "tenant": config.id,
                    "started": counts.started, "received": sum(counts.received.values()),
                    "deflected": counts.deflected, "transferred": sum(counts.sent.values()),
                    "abandoned": counts.abandoned, "timed_out": counts.timed_out,
                    "answered": counts.answered,
                    "speed_to_answer_s": _round(counts.speed_to_answer),
                    "p90_wait_s": None if p90 is None else ("3600+" if p90 == float("inf")
                                                            else p90),
                    "feedback": _round(counts.feedback, 2), "rated": counts.rated,
                })
                for target, n in counts.sent.items():
                    name = self._name(target)
                    matrix.setdefault(config.name, {})
                    matrix[config.name][name] = matrix[config.name].get(name, 0) + n
                day += timedelta(days=1)
        return {"from": first.isoformat(), "to": last.isoformat(), "rows": rows,
                "transfers": matrix, "totals": totals}

    def _name(self, tenant_id: str) -> str:
        try:
            return self.config.tenant(tenant_id).name
        except KeyError:
            return tenant_id


def to_csv(report: dict[str, Any], table: str = "days") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if table == "transfers":
        writer.writerow(["from", "to", "transfers"])
        for source, targets in report["transfers"].items():
            for target, n in sorted(targets.items()):
                writer.writerow([_cell(source), _cell(target), n])
        return out.getvalue()
    writer.writerow(COLUMNS)
    for row in report["rows"]:
        writer.writerow([_cell(row[c]) if row[c] is not None else "" for c in COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would read as a formula is quoted as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
