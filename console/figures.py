"""A department's figures for a window of time: its rollups plus what the fold has not
reached yet, at a cost that does not grow with history.

The rollups of the UTC days the window touches are one query; the feeds' items after the
department's cursor (the last minute or so, storage/fold.py) are short walks of the feeds'
indexes (for the live view, after its first refresh, only the waits': the sessions opened
and closed come with the open chats' read), turned into facts in memory the same way the
fold does.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from console.open_chats import Changed
from storage.documents import DocumentStore
from storage.feeds import SESSION_FEEDS, from_sessions, since
from storage.fold import read_cursor
from storage.layout import CONSOLE
from storage.stats import (
    FEEDS,
    SLOT_MINUTES,
    Counts,
    Fact,
    Position,
    Rollup,
    facts,
    slot_of,
    slot_start,
    utc_days,
)


@dataclass
class Slots:
    """A department's slots over some UTC days: (day, slot) -> counts."""

    by_slot: dict[tuple[str, str], Counts] = field(default_factory=dict)
    # the sums of windows already asked for, by the slots they span (cleared by `add`)
    _totals: dict[tuple[tuple[str, str], tuple[str, str]], Counts] = field(
        default_factory=dict, repr=False, compare=False)

    def add(self, day: str, slot: str, counts: Counts, sign: int = 1) -> None:
        self._totals.clear()
        mine = self.by_slot.get((day, slot))
        if mine is None:
            mine = self.by_slot[(day, slot)] = Counts()
        mine.absorb(counts, sign)

    def between(self, start: datetime, end: datetime) -> Counts:
        """The sum of the slots that begin in [start, end). Kept until a slot changes: the
        live view asks for the same slots every refresh until a new one begins."""
        bounds = (first_slot_from(start), first_slot_from(end))
        total = self._totals.get(bounds)
        if total is None:
            low, high = bounds
            total = Counts()
            for key, counts in self.by_slot.items():
                if low <= key < high:
                    total.absorb(counts)
            self._totals[bounds] = total
        return total


def first_slot_from(moment: datetime) -> tuple[str, str]:
    """The first slot that begins at or after `moment` ((day, slot) keys compare as text:
    YYYY-MM-DD, HHMM)."""
    day, slot = slot_of(moment)
    if slot_start(day, slot) < moment:
        day, slot = slot_of(slot_start(day, slot) + timedelta(minutes=SLOT_MINUTES))
    return day, slot


@dataclass
class Figures:
    """A window's figures: the rollups' slots and the tail's, summed when asked."""

    parts: list[Slots]
    # the fold is far behind: figures past its cursor are not all counted yet
    behind: bool = False

    def between(self, start: datetime, end: datetime) -> Counts:
        total = Counts()
        for part in self.parts:
            total.absorb(part.between(start, end))
        return total


# items past the cursor one refresh reads at most per feed (a fold far behind, say the first
# one on a long history, is caught up by the fold; meanwhile the figures say so)
TAIL_LIMIT = 5_000
# each refresh reads again the items of the last seconds: a write whose timestamp was taken
# before it landed (a turn in flight) is counted once it lands; one later still is counted
# when the fold passes it (its `lag` covers that case)
LATE = timedelta(seconds=5)


class Tail:
    """A department's feed items past the fold's cursor, with their facts. Kept by the live
    view between refreshes, so each refresh reads only what is new since the last one (and
    the last LATE seconds again); an item leaves it when the fold's cursor passes it (it is in
    the rollups then). Items are keyed by position, so one read twice counts once. Their sum
    is kept as they come and go: a refresh costs what changed, not the tail's length."""

    def __init__(self) -> None:
        # each item's facts, with the ETag of the body they were taken from: one read again
        # unchanged costs nothing
        self.items: dict[str, dict[Position, tuple[str | None, list[Fact]]]] = {
            feed: {} for feed in FEEDS}
        self.sums = Slots()
        # feeds whose last read stopped at TAIL_LIMIT: what they hold is not contiguous
        self.cut: set[str] = set()
        self.behind = False
        # the feeds read by a query since their last cut (after that, a session feed's new
        # items can come from the open chats' read), and when the last refresh began
        self.queried: set[str] = set()
        self.read_at: datetime | None = None
        # the rollups' slots as last read, with the ETags they were read at: reused while
        # the fold has not written them again (every 10 s at most)
        self.rollups: tuple[tuple[str, str | None], ...] = ()
        self.rollup_slots = Slots()

    def _put(self, feed: str, position: Position, body: dict[str, Any] | None,
             rating_keys: tuple[str, ...] = ()) -> None:
        """Count an item as its body now is (None: forget it)."""
        version = body.get("_etag") if body is not None else None
        kept = self.items[feed].get(position)
        if version is not None and kept is not None and kept[0] == version:
            return  # read again within LATE, unchanged: the sums stay as they are
        if kept is not None:
            del self.items[feed][position]
            for fact in kept[1]:
                self.sums.add(fact.day, fact.slot, fact.counts, -1)
        if body is not None:
            found = facts(feed, body, rating_keys)
            self.items[feed][position] = (version, found)
            for fact in found:
                self.sums.add(fact.day, fact.slot, fact.counts)

    async def refresh(self, docs: DocumentStore, tenant_id: str,
                      rating_keys: tuple[str, ...], now: datetime,
                      floor: datetime | None = None, changed: Changed | None = None) -> None:
        """Read what is new past the fold's cursor; never before `floor` (the start of the
        window shown: before the first fold, the cursor says nothing).

        `changed`, the sessions written since shortly before the last refresh (the open
        chats' read, console/open_chats.py), holds every session opened or closed since then
        (each write stamps `updated_at` no earlier than `created_at` or `closed_at`): a feed
        of sessions already read once takes its new items from it, with no query of its own.
        """
        cursor = await read_cursor(docs, tenant_id)
        low: Position | None = (
            (floor.astimezone(UTC).isoformat(timespec="milliseconds"), "") if floor else None)
        upto = (now + timedelta(minutes=5)).isoformat(timespec="milliseconds")
        settled = (now - LATE).isoformat(timespec="milliseconds")
        self.behind = False
        # the open chats' read holds all this refresh would read again of the sessions: it
        # goes back at least LATE before the last refresh that completed
        delta = changed.sessions if changed is not None and self.read_at is not None and (
            changed.since <= (self.read_at - LATE).isoformat(timespec="milliseconds")) else None
        for feed in FEEDS:
            done = cursor.positions.get(feed)
            for position in [p for p in self.items[feed]
                             if feed in self.cut or (done is not None and p <= done)]:
                self._put(feed, position, None)
            if feed in self.cut:
                self.queried.discard(feed)  # what it holds is not contiguous: read it again
            self.cut.discard(feed)
            known = [p for p in self.items[feed] if p[0] <= settled]
            after = max([p for p in (done, max(known, default=None), low) if p is not None],
                        default=None)
            if delta is not None and feed in SESSION_FEEDS and feed in self.queried:
                for position, body in from_sessions(feed, delta, after, upto):
                    self._put(feed, position, body, rating_keys)
                continue
            self.queried.add(feed)
            read = 0
            async with aclosing(since(docs, feed, tenant_id, after, upto)) as pages:
                async for page in pages:
                    for position, body in page:
                        self._put(feed, position, body, rating_keys)
                    read += len(page)
                    if read >= TAIL_LIMIT:
                        self.behind = True
                        self.cut.add(feed)
                        break
        self.read_at = now


async def slots(docs: DocumentStore, tenant_id: str, start: datetime, end: datetime,
                rating_keys: tuple[str, ...], now: datetime, tail: Tail | None = None,
                changed: Changed | None = None) -> Figures:
    """The figures of [start, end): rollups, and the items not folded yet when the window
    reaches past the cursor (`tail`: the live view's, read incrementally, which also keeps
    the rollups' slots while their ETags stay the same)."""
    days = utc_days(start, end)
    found = await docs.query(CONSOLE, tenant_id, {"type": "rollup"}, order_by="day",
                             descending=True, limit=len(days), at_most={"day": days[-1]})
    found = [doc for doc in found if str(doc.body.get("day", "")) >= days[0]]
    seen = tuple((doc.id, doc.etag) for doc in found)
    if tail is not None and seen == tail.rollups:
        base = tail.rollup_slots
    else:
        base = Slots()
        for doc in found:
            rollup = Rollup.model_validate(doc.body)
            for slot, counts in rollup.slots.items():
                base.add(rollup.day, slot, counts)
        if tail is not None:
            tail.rollups, tail.rollup_slots = seen, base
    out = Figures([base])
    if end >= now - timedelta(days=1):
        tail = tail or Tail()
        await tail.refresh(docs, tenant_id, rating_keys, now, start, changed)
        out.parts.append(tail.sums)
        out.behind = tail.behind
    return out


def zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def local_day(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A department's calendar day, as a [start, end) window."""
    start = datetime.combine(day, time.min, tz)
    return start, datetime.combine(day + timedelta(days=1), time.min, tz)
