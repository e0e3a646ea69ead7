"""Opening hours: wall-clock intervals in a time zone, holidays, DST, next opening.

Europe/Paris in 2026: clocks go forward on Sunday 29 March at 02:00 CET (01:00 UTC) to 03:00
CEST, and back on Sunday 25 October at 03:00 CEST (01:00 UTC) to 02:00 CET.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from pipelines.hours import Holiday, Interval, OpeningHours, Schedule, check_timezone, describe

PARIS = "Europe/Paris"
WEEKDAYS_9_TO_1730 = {
    day: ["09:00-17:30"] for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def schedule(holidays: tuple[Holiday, ...] = (), **days: list[str]) -> Schedule:
    return Schedule(PARIS, OpeningHours(**{**WEEKDAYS_9_TO_1730, **days}), holidays)


# --------------------------------------------------------------------------- edges


def test_exactly_at_opening_is_open_and_exactly_at_closing_is_closed() -> None:
    hours = schedule()
    # Wednesday 21 January 2026, Paris is UTC+1: 09:00 local is 08:00 UTC
    assert not hours.is_open(utc(2026, 1, 21, 7, 59, 59))
    assert hours.is_open(utc(2026, 1, 21, 8, 0, 0))
    assert hours.is_open(utc(2026, 1, 21, 16, 29, 59))  # one second before closing
    assert not hours.is_open(utc(2026, 1, 21, 16, 30, 0))  # 17:30 local
    assert hours.is_open(datetime(2026, 1, 21, 16, 29, 59, 999_999, tzinfo=UTC))


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        schedule().is_open(datetime(2026, 1, 21, 10))


def test_next_open_later_the_same_day_and_after_lunch() -> None:
    hours = schedule(wednesday=["09:00-12:00", "13:00-17:30"])
    assert hours.next_open(utc(2026, 1, 21, 6, 0)) == utc(2026, 1, 21, 8, 0)
    assert not hours.is_open(utc(2026, 1, 21, 11, 30))  # 12:30 local: lunch
    assert hours.next_open(utc(2026, 1, 21, 11, 30)) == utc(2026, 1, 21, 12, 0)
    # open now: next_open is now
    assert hours.next_open(utc(2026, 1, 21, 9, 0)) == utc(2026, 1, 21, 9, 0)


def test_next_open_across_a_weekend() -> None:
    hours = schedule()
    friday_closing = utc(2026, 1, 23, 16, 30)  # Friday 17:30 local
    opens = hours.next_open(friday_closing)
    assert opens == utc(2026, 1, 26, 8, 0)
    assert describe(opens, PARIS) == "Monday 26 January at 09:00 (Europe/Paris)"
    assert hours.next_open(utc(2026, 1, 24, 12, 0)) == opens  # from Saturday
    assert hours.next_open(utc(2026, 1, 25, 23, 0)) == opens  # Sunday 00:00 local


def test_a_holiday_is_closed_all_day_and_next_open_skips_it() -> None:
    hours = schedule(holidays=(Holiday(date=date(2026, 1, 1), name="New Year's Day"),))
    new_year = utc(2026, 1, 1, 10, 0)  # a Thursday, 11:00 local
    assert not hours.is_open(new_year)
    assert hours.holiday(date(2026, 1, 1)).name == "New Year's Day"
    assert hours.next_open(new_year) == utc(2026, 1, 2, 8, 0)
    # the evening before: the holiday is skipped
    assert hours.next_open(utc(2025, 12, 31, 17, 0)) == utc(2026, 1, 2, 8, 0)
    # the holiday is a local date: 23:30 UTC on 31 December is already 1 January in Paris
    assert hours.holiday(hours.local(utc(2025, 12, 31, 23, 30)).date()) is not None


def test_next_open_across_consecutive_holidays_and_a_weekend() -> None:
    hours = schedule(holidays=(
        Holiday(date=date(2026, 12, 25), name="Christmas Day"),
        Holiday(date=date(2026, 12, 28)),
        Holiday(date=date(2026, 12, 29)),
    ))
    # Thursday 24 December after closing: Fri 25 (holiday), weekend, Mon 28, Tue 29 (holidays)
    opens = hours.next_open(utc(2026, 12, 24, 17, 0))
    assert opens == utc(2026, 12, 30, 8, 0)
    assert describe(opens, PARIS) == "Wednesday 30 December at 09:00 (Europe/Paris)"


def test_an_interval_to_midnight_runs_into_the_next_days_first_interval() -> None:
    hours = schedule(friday=["20:00-24:00"], saturday=["00:00-02:00"])
    assert hours.is_open(utc(2026, 1, 23, 22, 59, 59))  # Friday 23:59:59 local
    assert hours.is_open(utc(2026, 1, 23, 23, 0, 0))  # Saturday 00:00 local
    assert not hours.is_open(utc(2026, 1, 24, 1, 0))  # Saturday 02:00 local


def test_never_open_gives_no_next_opening() -> None:
    hours = Schedule(PARIS, OpeningHours())
    assert hours.next_open(utc(2026, 1, 21, 10)) is None


# --------------------------------------------------------------------------- DST


def test_opening_hours_on_both_sides_of_spring_forward() -> None:
    hours = schedule()
    # Friday 27 March: CET (UTC+1); Monday 30 March: CEST (UTC+2); both open at 09:00 local
    assert not hours.is_open(utc(2026, 3, 27, 7, 59, 59))
    assert hours.is_open(utc(2026, 3, 27, 8, 0))
    assert not hours.is_open(utc(2026, 3, 30, 6, 59, 59))
    assert hours.is_open(utc(2026, 3, 30, 7, 0))
    assert hours.is_open(utc(2026, 3, 30, 15, 29, 59))
    assert not hours.is_open(utc(2026, 3, 30, 15, 30))
    opens = hours.next_open(utc(2026, 3, 29, 12, 0))
    assert opens == utc(2026, 3, 30, 7, 0)
    assert describe(opens, PARIS) == "Monday 30 March at 09:00 (Europe/Paris)"


def test_opening_hours_on_both_sides_of_fall_back() -> None:
    hours = schedule()
    # Friday 23 October: CEST (UTC+2); Monday 26 October: CET (UTC+1)
    assert hours.is_open(utc(2026, 10, 23, 7, 0))
    assert not hours.is_open(utc(2026, 10, 26, 7, 0))
    assert hours.next_open(utc(2026, 10, 23, 16, 0)) == utc(2026, 10, 26, 8, 0)


def test_an_interval_spanning_the_spring_forward_jump_lasts_two_real_hours() -> None:
    hours = schedule(sunday=["01:00-04:00"])
    assert not hours.is_open(utc(2026, 3, 28, 23, 59, 59))  # 00:59:59 CET
    assert hours.is_open(utc(2026, 3, 29, 0, 0))  # 01:00 CET
    assert hours.is_open(utc(2026, 3, 29, 0, 59, 59))  # 01:59:59 CET, just before the jump
    assert hours.is_open(utc(2026, 3, 29, 1, 0))  # 03:00 CEST, just after it
    assert hours.is_open(utc(2026, 3, 29, 1, 59, 59))  # 03:59:59 CEST
    assert not hours.is_open(utc(2026, 3, 29, 2, 0))  # 04:00 CEST
    assert hours.next_open(utc(2026, 3, 28, 20, 0)) == utc(2026, 3, 29, 0, 0)


def test_an_interval_spanning_the_fall_back_jump_lasts_four_real_hours() -> None:
    hours = schedule(sunday=["01:00-04:00"])
    assert hours.next_open(utc(2026, 10, 24, 20, 0)) == utc(2026, 10, 24, 23, 0)  # 01:00 CEST
    assert hours.is_open(utc(2026, 10, 25, 0, 59, 59))  # 02:59:59 CEST
    assert hours.is_open(utc(2026, 10, 25, 1, 0))  # 02:00 CET, the second time
    assert hours.is_open(utc(2026, 10, 25, 2, 59, 59))  # 03:59:59 CET
    assert not hours.is_open(utc(2026, 10, 25, 3, 0))  # 04:00 CET


def test_an_opening_time_the_clocks_skip_opens_at_the_jump() -> None:
    hours = schedule(sunday=["02:30-05:00"])
    assert not hours.is_open(utc(2026, 3, 29, 0, 59, 59))  # 01:59:59 CET
    assert hours.is_open(utc(2026, 3, 29, 1, 0))  # 03:00 CEST: past 02:30 on the clock
    opens = hours.next_open(utc(2026, 3, 28, 20, 0))
    assert opens == utc(2026, 3, 29, 1, 0)
    assert describe(opens, PARIS) == "Sunday 29 March at 03:00 (Europe/Paris)"


def test_an_interval_inside_the_skipped_hour_never_opens_that_night() -> None:
    hours = schedule(sunday=["02:10-02:40"])
    # the next Sunday with an 02:10 is 5 April (CEST): 00:10 UTC
    assert hours.next_open(utc(2026, 3, 28, 20, 0)) == utc(2026, 3, 30, 7, 0)  # Monday
    weekends_only = Schedule(PARIS, OpeningHours(sunday=["02:10-02:40"]))
    assert weekends_only.next_open(utc(2026, 3, 28, 20, 0)) == utc(2026, 4, 5, 0, 10)


def test_a_time_the_clocks_repeat_opens_again_the_second_time() -> None:
    hours = Schedule(PARIS, OpeningHours(sunday=["02:15-02:45"]))
    first = hours.next_open(utc(2026, 10, 24, 20, 0))
    assert first == utc(2026, 10, 25, 0, 15)  # 02:15 CEST
    assert not hours.is_open(utc(2026, 10, 25, 0, 50))  # 02:50 CEST
    assert hours.next_open(utc(2026, 10, 25, 0, 50)) == utc(2026, 10, 25, 1, 15)  # 02:15 CET


def test_next_open_iso_keeps_the_local_offset() -> None:
    hours = schedule()
    assert hours.local(utc(2026, 3, 30, 7, 0)).isoformat() == "2026-03-30T09:00:00+02:00"
    assert hours.local(utc(2026, 1, 26, 8, 0)).isoformat() == "2026-01-26T09:00:00+01:00"


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-17:30", (540, 1050)),
        (" 9:05 - 12:00 ", (545, 720)),
        ("00:00-24:00", (0, 1440)),
    ],
)
def test_intervals_parse(text: str, expected: tuple[int, int]) -> None:
    interval = Interval.parse(text)
    assert (interval.start, interval.end) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("9-17", "is not an interval like"),
        ("09:00", "is not an interval like"),
        ("25:00-26:00", "times go from 00:00 to 24:00"),
        ("09:60-10:00", "times go from 00:00 to 24:00"),
        ("09:00-24:30", "times go from 00:00 to 24:00"),
        ("17:00-09:00", "ends before it starts"),
        ("09:00-09:00", "ends before it starts"),
    ],
)
def test_bad_intervals_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Interval.parse(text)


def test_overlapping_intervals_are_refused_and_touching_ones_allowed() -> None:
    with pytest.raises(ValidationError, match="intervals 09:00-12:00 and 11:00-17:30 overlap"):
        OpeningHours(monday=["11:00-17:30", "09:00-12:00"])
    hours = OpeningHours(monday=["13:00-17:00", "09:00-13:00"])
    assert hours.monday == ["09:00-13:00", "13:00-17:00"]


def test_a_day_may_be_one_interval_closed_or_left_out() -> None:
    hours = OpeningHours(monday="09:00-17:00", tuesday="closed", wednesday=None)
    assert hours.monday == ["09:00-17:00"] and hours.tuesday == [] and hours.wednesday == []
    with pytest.raises(ValidationError, match="extra"):
        OpeningHours(mondays=["09:00-17:00"])


def test_holidays_are_dates_or_dates_with_names() -> None:
    assert Holiday.model_validate("2026-12-25") == Holiday(date=date(2026, 12, 25))
    assert Holiday.model_validate(date(2026, 12, 25)).name is None
    assert Holiday.model_validate({"date": "2026-12-26", "name": "Boxing Day"}).name == (
        "Boxing Day"
    )
    with pytest.raises(ValidationError):
        Holiday.model_validate("26/12/2026")


def test_time_zones_are_iana_names() -> None:
    assert check_timezone("Europe/London") == "Europe/London"
    assert check_timezone("UTC") == "UTC"
    with pytest.raises(ValueError, match="did you mean 'Europe/Paris'"):
        check_timezone("Europe/Pari")
    with pytest.raises(ValueError, match="not an IANA time zone name"):
        check_timezone("/etc/localtime")
    with pytest.raises(ValueError, match="not an IANA time zone name"):
        check_timezone("../../etc/passwd")
    with pytest.raises(ValueError):
        check_timezone("Mars/Olympus_Mons")
