"""The console's figures: counters per department and ten-minute slot, kept in one rollup
document per department and UTC day (the `console` container, storage/layout.py).

A rollup is never recomputed from history: storage/fold.py adds to it what the store's
feeds (storage/feeds.py) show since it last looked, so reading a day's figures is one
document whatever the history. What each feed item adds is `facts()`; the same function
turns the few items the fold has not reached yet into figures for the live view.

Slots are ten minutes of UTC, so a department's day in its own time zone (any zone whose
offset is a multiple of ten minutes) is a sum of whole slots of one or two UTC days.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SLOT_MINUTES = 10
# upper bounds (seconds) of the wait histogram's buckets; the last one is open
WAIT_BOUNDS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200,
               1800, 2700, 3600)
# the three feeds a rollup is folded from: sessions by when they opened and closed, and
# the records of waits for an agent as each wait ended
FEEDS = ("opened", "closed", "waits")


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


class Counts(BaseModel):
    """What happened in a department in one slot (or a sum of slots)."""

    model_config = ConfigDict(extra="ignore")

    # chats that began here (not brought by a transfer)
    started: int = 0
    # chats brought here by a transfer, by the department they came from
    received: dict[str, int] = Field(default_factory=dict)
    # chats sent away by a transfer, by the department they went to
    sent: dict[str, int] = Field(default_factory=dict)
    # sessions closed here, by how they closed (deflected, resolved, ended, transferred...)
    closed: dict[str, int] = Field(default_factory=dict)
    # waits for an agent that ended: answered (with the seconds waited), abandoned by the
    # guest, given up after the stage's maximum wait, and every ended wait's length
    answered: int = 0
    answer_seconds: float = 0.0
    abandoned: int = 0
    timed_out: int = 0
    waits: list[int] = Field(default_factory=lambda: [0] * (len(WAIT_BOUNDS) + 1))
    # the feedback ratings (1-5) of chats that closed
    ratings: dict[str, int] = Field(default_factory=dict)

    def add(self, other: Counts) -> Counts:
        return Counts(
            started=self.started + other.started,
            received=_add(self.received, other.received),
            sent=_add(self.sent, other.sent),
            closed=_add(self.closed, other.closed),
            answered=self.answered + other.answered,
            answer_seconds=self.answer_seconds + other.answer_seconds,
            abandoned=self.abandoned + other.abandoned,
            timed_out=self.timed_out + other.timed_out,
            waits=[a + b for a, b in zip(self.waits, other.waits, strict=True)],
            ratings=_add(self.ratings, other.ratings),
        )

    def absorb(self, other: Counts, sign: int = 1) -> None:
        """Adds `other` into this one in place (sign -1: takes it out again), so a sum of
        many builds no models."""
        # a fact sets one or two of these: a model's setattr is not free, skip the zeros
        if other.started:
            self.started += sign * other.started
        if other.answered:
            self.answered += sign * other.answered
        if other.answer_seconds:
            self.answer_seconds += sign * other.answer_seconds
        if other.abandoned:
            self.abandoned += sign * other.abandoned
        if other.timed_out:
            self.timed_out += sign * other.timed_out
        for mine, theirs in ((self.received, other.received), (self.sent, other.sent),
                             (self.closed, other.closed), (self.ratings, other.ratings)):
            for key, value in theirs.items():
                total = mine.get(key, 0) + sign * value
                if total:
                    mine[key] = total
                else:
                    mine.pop(key, None)
        if any(other.waits):
            self.waits = [a + sign * b for a, b in zip(self.waits, other.waits, strict=True)]

    @property
    def deflected(self) -> int:
        return self.closed.get("deflected", 0)

    @property
    def rated(self) -> int:
        return sum(self.ratings.values())

    @property
    def feedback(self) -> float | None:
        """The average rating, None without any."""
        rated = self.rated
        if not rated:
            return None
        return sum(int(k) * n for k, n in self.ratings.items()) / rated

    @property
    def speed_to_answer(self) -> float | None:
        """Average seconds a guest waited for the agent who answered, None without any."""
        return self.answer_seconds / self.answered if self.answered else None

    def wait_percentile(self, p: float) -> float | None:
        """The upper bound of the histogram bucket holding the p-th percentile of ended
        waits (None without any; infinity past the last bound)."""
        total = sum(self.waits)
        if not total:
            return None
        rank = p * total
        running = 0
        for index, count in enumerate(self.waits):
            running += count
            if running >= rank and count:
                return float(WAIT_BOUNDS[index]) if index < len(WAIT_BOUNDS) else float("inf")
        return float("inf")

    def empty(self) -> bool:
        return self == Counts()


def wait_bucket(seconds: float) -> int:
    return bisect.bisect_left(WAIT_BOUNDS, max(0.0, seconds))


# -- time --------------------------------------------------------------------------------


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def slot_of(moment: datetime) -> tuple[str, str]:
    """The UTC day (YYYY-MM-DD) and slot (HHMM) a moment falls in."""
    utc = moment.astimezone(UTC)
    minute = utc.minute - utc.minute % SLOT_MINUTES
    return utc.date().isoformat(), f"{utc.hour:02d}{minute:02d}"


def slot_start(day: str, slot: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC) + timedelta(
        hours=int(slot[:2]), minutes=int(slot[2:]))


def utc_days(start: datetime, end: datetime) -> list[str]:
    """The UTC days a [start, end) window touches, oldest first."""
    first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(
        UTC).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


# -- what a feed item adds ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fact:
    """What one feed item adds to one slot of its department."""

    day: str
    slot: str
    counts: Counts


def facts(feed: str, body: dict[str, Any], rating_keys: Iterable[str]) -> list[Fact]:
    """The figures a feed item adds: an opened or closed session, or an ended wait."""
    if feed == "opened":
        return _opened(body)
    if feed == "closed":
        return _closed(body, rating_keys)
    if feed == "waits":
        return _wait(body)
    raise ValueError(f"unknown feed {feed!r}")


def _opened(body: dict[str, Any]) -> list[Fact]:
    created = body.get("created_at")
    if not isinstance(created, str):
        return []
    day, slot = slot_of(parse_time(created))
    hops = body.get("hop_log") or []
    last = hops[-1] if hops else None
    if last and last.get("to_session_id") == body.get("id"):
        counts = Counts(received={str(last.get("from_tenant_id")): 1})
    else:
        counts = Counts(started=1)
    return [Fact(day, slot, counts)]


def _closed(body: dict[str, Any], rating_keys: Iterable[str]) -> list[Fact]:
    closed = body.get("closed_at")
    if not isinstance(closed, str):
        return []
    day, slot = slot_of(parse_time(closed))
    state = str(body.get("state"))
    counts = Counts(closed={state: 1})
    transfer = body.get("transfer") or {}
    if state == "transferred" and transfer.get("to_tenant_id"):
        counts.sent = {str(transfer["to_tenant_id"]): 1}
    metadata = body.get("metadata") or {}
    for key in rating_keys:
        rating = metadata.get(key)
        if isinstance(rating, int) and not isinstance(rating, bool) and 1 <= rating <= 5:
            counts.ratings = {str(rating): 1}
            break
    return [Fact(day, slot, counts)]


def _wait(body: dict[str, Any]) -> list[Fact]:
    at = body.get("at")
    waited = body.get("waited")
    if not isinstance(at, str) or not isinstance(waited, int | float):
        return []
    day, slot = slot_of(parse_time(at))
    counts = Counts()
    counts.waits[wait_bucket(float(waited))] += 1
    outcome = body.get("outcome")
    if outcome == "answered":
        counts.answered, counts.answer_seconds = 1, float(waited)
    elif outcome == "abandoned":
        counts.abandoned = 1
    elif outcome == "timed_out":
        counts.timed_out = 1
    return [Fact(day, slot, counts)]


# -- the rollup document -----------------------------------------------------------------

# a feed position: the item's time and id (items with the same time are ordered by id)
Position = tuple[str, str]


class Rollup(BaseModel):
    """One department's day: its slots, and how far each feed has been folded into it."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    day: str
    slots: dict[str, Counts] = Field(default_factory=dict)
    # per feed: the last item folded in (everything up to it is in, nothing after it)
    through: dict[str, Position] = Field(default_factory=dict)
    etag: str | None = Field(default=None, exclude=True)

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude={"slots"})
        out["slots"] = {k: v.model_dump(mode="json", exclude_defaults=True)
                        for k, v in self.slots.items()}
        out["type"] = "rollup"
        return out

    def add(self, slot: str, counts: Counts) -> None:
        self.slots[slot] = self.slots.get(slot, Counts()).add(counts)

    def between(self, start: datetime, end: datetime) -> Counts:
        """The sum of the slots that start in [start, end)."""
        total = Counts()
        for slot, counts in self.slots.items():
            if start <= slot_start(self.day, slot) < end:
                total = total.add(counts)
        return total


def rollup_id(day: str) -> str:
    return f"day:{day}"
