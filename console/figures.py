"""A department's figures for a window of time: its rollups plus what the fold has not
reached yet, at a cost that does not grow with history.

The rollups of the UTC days the window touches are one query; the feeds' items after the
department's cursor (the last minute or so, storage/fold.py) are three short walks of the
feeds' indexes, turned into facts in memory the same way the fold does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.documents import DocumentStore
from storage.feeds import since
from storage.fold import read_cursor
from storage.layout import CONSOLE
from storage.stats import FEEDS, Counts, Rollup, facts, slot_start, utc_days


@dataclass
class Slots:
    """A department's slots over some UTC days: (day, slot) -> counts."""

    by_slot: dict[tuple[str, str], Counts] = field(default_factory=dict)

    def add(self, day: str, slot: str, counts: Counts) -> None:
        key = (day, slot)
        self.by_slot[key] = self.by_slot.get(key, Counts()).add(counts)

    def between(self, start: datetime, end: datetime) -> Counts:
        total = Counts()
        for (day, slot), counts in self.by_slot.items():
            if start <= slot_start(day, slot) < end:
                total = total.add(counts)
        return total


async def slots(docs: DocumentStore, tenant_id: str, start: datetime, end: datetime,
                rating_keys: tuple[str, ...], now: datetime) -> Slots:
    """The slots of [start, end): rollups, and the items not folded yet when the window
    reaches past the cursor."""
    days = utc_days(start, end)
    found = await docs.query(CONSOLE, tenant_id, {"type": "rollup"}, order_by="day",
                             descending=True, limit=len(days), at_most={"day": days[-1]})
    out = Slots()
    for doc in found:
        rollup = Rollup.model_validate(doc.body)
        if rollup.day < days[0]:
            continue
        for slot, counts in rollup.slots.items():
            out.add(rollup.day, slot, counts)
    if end >= now - timedelta(days=1):
        cursor = await read_cursor(docs, tenant_id)
        upto = (now + timedelta(minutes=5)).isoformat(timespec="milliseconds")
        for feed in FEEDS:
            async for page in since(docs, feed, tenant_id, cursor.positions.get(feed), upto):
                for _, body in page:
                    for fact in facts(feed, body, rating_keys):
                        out.add(fact.day, fact.slot, fact.counts)
    return out


def zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def local_day(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A department's calendar day, as a [start, end) window."""
    start = datetime.combine(day, time.min, tz)
    return start, datetime.combine(day + timedelta(days=1), time.min, tz)
