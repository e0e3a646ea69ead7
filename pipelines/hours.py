"""Opening hours of a tenant: a time zone, a weekly schedule and holidays.

Hours are wall-clock times in the tenant's time zone (IANA name, through `zoneinfo`; the
`tzdata` package supplies the database where the system has none). The desk is open at an
instant when that instant's local date is not a holiday and its local time of day falls in
one of that weekday's intervals, start included, end excluded. So across a daylight-saving
change an interval keeps its wall-clock meaning: "01:00-04:00" on the spring-forward night
lasts two real hours, on the fall-back night four; an opening time that does not exist that
night (02:30 when clocks jump from 02:00 to 03:00) opens at the jump.

Times come from the caller (the engine's injectable clock), never from the wall clock here.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "WEEKDAYS",
    "Holiday",
    "Interval",
    "OpeningHours",
    "Schedule",
    "check_timezone",
    "describe",
]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
_INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
DAY = 24 * 60
# how far ahead the next opening is looked for (a year of holidays, and then some)
SEARCH_DAYS = 800


@dataclass(frozen=True, order=True)
class Interval:
    """Open from `start` to `end`, in minutes after local midnight (end 1440 = midnight)."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Interval:
        match = _INTERVAL.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{text!r} is not an interval like \"09:00-17:30\"")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise ValueError(f"{text!r}: times go from 00:00 to 24:00, like \"09:00-17:30\"")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            raise ValueError(
                f"{text!r} ends before it starts: an interval ends on the same day (write "
                "\"22:00-24:00\" on one day and \"00:00-06:00\" on the next for a night shift)"
            )
        return cls(start, end)

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class OpeningHours(BaseModel):
    """Per weekday, zero or more open intervals ("09:00-17:30"). A day left out is closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    monday: list[str] = Field(default_factory=list)
    tuesday: list[str] = Field(default_factory=list)
    wednesday: list[str] = Field(default_factory=list)
    thursday: list[str] = Field(default_factory=list)
    friday: list[str] = Field(default_factory=list)
    saturday: list[str] = Field(default_factory=list)
    sunday: list[str] = Field(default_factory=list)

    @field_validator(*WEEKDAYS, mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # `monday: "09:00-17:30"` is one interval; `monday: null` or `closed` is none
        if value is None or (isinstance(value, str) and value.strip().casefold() == "closed"):
            return []
        return [value] if isinstance(value, str) else value

    @field_validator(*WEEKDAYS)
    @classmethod
    def _intervals(cls, value: list[str]) -> list[str]:
        intervals = sorted(Interval.parse(text) for text in value)
        for before, after in itertools.pairwise(intervals):
            if after.start < before.end:
                raise ValueError(f"intervals {before} and {after} overlap: merge them")
        return [str(i) for i in intervals]

    def intervals(self, weekday: int) -> list[Interval]:
        """The open intervals of a weekday (0 = Monday), in order."""
        return [Interval.parse(text) for text in getattr(self, WEEKDAYS[weekday])]

    @property
    def never_open(self) -> bool:
        return not any(getattr(self, day) for day in WEEKDAYS)


class Holiday(BaseModel):
    """A day the desk is closed all day: `2026-12-25` or `{date: 2026-12-25, name: ...}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    name: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="before")
    @classmethod
    def _bare_date(cls, value: Any) -> Any:
        return {"date": value} if isinstance(value, date | str) else value


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def check_timezone(name: str) -> str:
    """`name` if it is an IANA time zone; ValueError saying what to write otherwise."""
    problem = None
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        problem = "not an IANA time zone name"
    else:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            problem = "unknown time zone"
    if problem is None:
        return name
    close = difflib.get_close_matches(name, _zone_names(), n=1)
    hint = f": did you mean {close[0]!r}?" if close else ": use a name like 'Europe/Paris'"
    raise ValueError(f"{problem} {name!r}{hint}")


def describe(moment: datetime, zone: str) -> str:
    """"Monday 26 January at 09:00 (Europe/Paris)": the local time, in English."""
    local = moment.astimezone(ZoneInfo(zone))
    return (
        f"{WEEKDAYS[local.weekday()].capitalize()} {local.day} {_MONTHS[local.month - 1]} "
        f"at {local:%H:%M} ({zone})"
    )


@dataclass(frozen=True)
class Schedule:
    """The weekly hours and holidays of one tenant, in its time zone."""

    zone: str
    hours: OpeningHours
    holidays: tuple[Holiday, ...] = ()

    @functools.cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @functools.cached_property
    def _holidays(self) -> dict[date, Holiday]:
        return {h.date: h for h in self.holidays}

    def holiday(self, day: date) -> Holiday | None:
        return self._holidays.get(day)

    def local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("an aware datetime is needed (the engine's clock is UTC)")
        return moment.astimezone(self.tz)

    def is_open(self, moment: datetime) -> bool:
        local = self.local(moment)
        if local.date() in self._holidays:
            return False
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        return any(i.start <= minute < i.end for i in self.hours.intervals(local.weekday()))

    def next_open(self, moment: datetime) -> datetime | None:
        """`moment` if open then, else the first instant after it when the desk opens (UTC).

        None when it never opens within SEARCH_DAYS (a schedule with no hours at all).
        """
        if self.is_open(moment):
            return moment.astimezone(UTC)
        first = self.local(moment).date()
        for offset in range(SEARCH_DAYS):
            day = first + timedelta(days=offset)
            if day in self._holidays:
                continue
            found = [
                start
                for interval in self.hours.intervals(day.weekday())
                for start in self._starts(day, interval.start)
                if start > moment and self.is_open(start)
            ]
            if found:
                return min(found).astimezone(UTC)
        return None

    def _starts(self, day: date, minute: int) -> set[datetime]:
        """The instants at which the local clock reaches `minute` on `day`.

        Usually one; two in the repeated hour of a fall-back night; in the skipped hour of a
        spring-forward night, the jump itself (the first instant the clock shows a later time).
        """
        wall = datetime.combine(day, time(minute // 60, minute % 60))
        found = set()
        for fold in (0, 1):
            aware = wall.replace(tzinfo=self.tz, fold=fold)
            instant = aware.astimezone(UTC)
            if instant.astimezone(self.tz).replace(tzinfo=None) == wall:
                found.add(instant)
        return found or {self._jump_after(wall)}

    def _jump_after(self, wall: datetime) -> datetime:
        """The first instant whose local time is at or after `wall`, which the clocks skip."""
        low = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)  # before the jump
        high = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)  # after it
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.tz).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0) if high.microsecond else high
