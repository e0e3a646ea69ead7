"""Durable timers, on both backends (`docs` runs each test on the embedded store and Cosmos).

Time is a fake clock advanced by hand; only the background-loop test waits real time (bounded).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from storage.documents import StoreUnavailable
from storage.layout import TIMERS
from storage.timers import NotYet, Timer, TimerRunner, TimerStore, bucket_of

START = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timers(docs, clock) -> TimerStore:
    return TimerStore(docs, owner="bot-a", clock=clock, lease_seconds=30, max_attempts=3)


@pytest.fixture
async def other_docs(docs, make_docs):
    """A second document store on the same database: what another bot instance has."""
    store = make_docs()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def other(other_docs, clock) -> TimerStore:
    return TimerStore(other_docs, owner="bot-b", clock=clock, lease_seconds=30, max_attempts=3)


def ids(timers: list[Timer]) -> list[str]:
    return [t.id for t in timers]


def sessions_of(timers: list[Timer]) -> list[str]:
    return [t.session_id for t in timers]


class Recorder:
    """A handler that counts calls per timer id (and yields, so instances interleave)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.by: dict[str, list[str]] = {}

    async def __call__(self, timer: Timer) -> None:
        await asyncio.sleep(0)
        self.calls[timer.id] += 1
        self.by.setdefault(timer.id, []).append(timer.lease_owner or "")


# -- scheduling ------------------------------------------------------------------------------


async def test_schedule_stores_a_timer_in_the_bucket_of_its_minute(timers, docs, clock):
    timer = await timers.schedule("it", "s1", "accept_timeout", delay=45, payload={"offer": 7})
    assert timer.id == f"s1:accept_timeout:{int((START + 45) * 1000)}"
    assert timer.tenant_id == "it" and timer.key == timer.id
    assert timer.due_at == START + 45 and timer.payload == {"offer": 7}
    assert timer.attempts == 0 and timer.lease_owner is None and timer.etag
    assert timer.bucket == bucket_of(START + 45) == "2023-11-14T22:14"

    doc = await docs.read(TIMERS, timer.bucket, timer.id)
    assert doc is not None and doc.etag == timer.etag
    assert doc.body["type"] == "timer" and doc.body["bucket"] == timer.bucket
    assert doc.body["session_id"] == "s1" and doc.body["due_at"] == START + 45
    assert doc.body["ttl"] > 0  # a timer nobody fires (its session gone) does not linger
    assert "etag" not in doc.body
    assert await timers.get(timer) == timer


async def test_due_is_ordered_by_due_time_across_tenants(timers, clock):
    await timers.schedule("it", "s1", "max_wait", delay=30)
    await timers.schedule("hr", "s2", "reminder", delay=10)
    await timers.schedule("legal", "s3", "accept_timeout", delay=20)
    await timers.schedule("it", "s4", "reminder", delay=500)
    clock.advance(30)
    assert sessions_of(await timers.due()) == ["s2", "s3", "s1"]
    assert sessions_of(await timers.due(limit=2)) == ["s2", "s3"]


async def test_not_due_before_its_time_and_due_exactly_at_it(timers, clock):
    timer = await timers.schedule("it", "s1", "reminder", delay=10)
    clock.now = timer.due_at - 0.001
    assert await timers.due() == []
    clock.now = timer.due_at
    assert ids(await timers.due()) == [timer.id]


async def test_a_poll_reads_one_or_two_buckets_whatever_the_history(timers, docs, clock):
    # a month of timers due in the future, and some due over the next minute
    for day in range(30):
        await timers.schedule("it", f"later{day}", "max_wait", delay=86_400 * (day + 1))
    runner = TimerRunner(timers, Recorder())
    await runner.run_once()  # a process's first poll finds the oldest bucket: one query more
    for i in range(5):
        await timers.schedule("it", f"s{i}", "offer", delay=i * 10)
    polls = []
    for _ in range(12):
        clock.advance(10)
        docs.stats.reset()
        await runner.run_once()
        polls.append(docs.stats.by_op.get("query", 0))
    # the bucket of now, and the one before at a minute's turn
    assert max(polls) <= 2 and sum(polls) <= 16, polls


async def test_the_first_poll_of_a_process_catches_up_on_timers_due_long_ago(docs, clock):
    before = TimerStore(docs, owner="bot-a", clock=clock)
    old = await before.schedule("it", "s1", "max_wait", delay=60)
    clock.advance(3 * 3600)  # the bot was down for three hours
    after = TimerStore(docs, owner="bot-b", clock=clock)
    assert ids(await after.due()) == [old.id]
    # the cursor stays on a bucket until it is empty, then moves on
    claimed = await after.claim((await after.due())[0])
    await after.finish(claimed)
    assert await after.due() == []
    assert after._cursor == bucket_of(clock.now)


async def test_a_leased_timer_keeps_its_bucket_in_the_poll_until_it_is_done(timers, other, clock):
    timer = await timers.schedule("it", "s1", "offer", delay=0)
    claimed = await timers.claim((await timers.due())[0])  # then its owner dies
    clock.advance(600)  # ten buckets later
    assert await other.due() != []  # the lease ran out: due again, from its old bucket
    assert (await other.due())[0].id == timer.id and claimed is not None


async def test_rescheduling_a_kind_makes_a_new_timer(timers, docs, clock):
    """The session records which one it wants (routing ignores the other when it fires)."""
    first = await timers.schedule("it", "s1", "reminder", delay=10, payload={"n": 1})
    second = await timers.schedule("it", "s1", "reminder", delay=60, payload={"n": 2})
    assert second.id != first.id and second.key != first.key
    clock.advance(60)
    assert ids(await timers.due()) == [first.id, second.id]


async def test_cancel_deletes_by_key(timers, clock):
    timer = await timers.schedule("it", "s1", "reminder", delay=5)
    assert await timers.cancel(timer.key) is True
    assert await timers.cancel(timer.key) is False
    assert await timers.cancel("not-a-key") is False
    clock.advance(10)
    assert await timers.due() == []


# -- firing ----------------------------------------------------------------------------------


async def test_run_once_fires_due_timers_and_deletes_them(timers, clock):
    handler = Recorder()
    runner = TimerRunner(timers, handler)
    first = await timers.schedule("it", "s1", "reminder", delay=5,
                                  payload={"text": "still searching"})
    later = await timers.schedule("it", "s2", "reminder", delay=50)
    assert await runner.run_once() == 0
    clock.advance(5)
    assert await runner.run_once() == 1
    assert handler.calls == {first.id: 1}
    assert await timers.get(first) is None
    assert await runner.run_once() == 0
    assert await timers.get(later) is not None


async def test_two_instances_claiming_the_same_read_exactly_one_wins(timers, other, clock):
    for i in range(8):
        await timers.schedule(f"t{i % 3}", f"s{i}", "reminder", delay=i)
    clock.advance(10)
    seen_a, seen_b = await timers.due(), await other.due()
    assert ids(seen_a) == ids(seen_b) and len(seen_a) == 8
    results = await asyncio.gather(
        *(
            store.claim(t)
            for a, b in zip(seen_a, seen_b, strict=True)
            for store, t in ((timers, a), (other, b))
        )
    )
    for i in range(8):
        pair = results[2 * i : 2 * i + 2]
        assert sum(r is not None for r in pair) == 1, f"timer s{i}: {pair}"
    # claimed timers hold a live lease: nobody sees them as due
    assert await timers.due() == [] and await other.due() == []


async def test_two_instances_racing_fire_every_timer_exactly_once(timers, other, clock):
    handler = Recorder()
    runner_a = TimerRunner(timers, handler)
    runner_b = TimerRunner(other, handler)
    expected = set()
    for i in range(20):
        timer = await timers.schedule(f"t{i % 3}", f"s{i}", "reminder", delay=i % 5)
        expected.add(timer.id)
    clock.advance(5)

    fired = await asyncio.gather(runner_a.run_once(), runner_b.run_once())
    assert sum(fired) == 20
    assert set(handler.calls) == expected
    assert all(n == 1 for n in handler.calls.values()), handler.calls
    # nothing left, and later rounds fire nothing again
    assert await asyncio.gather(runner_a.run_once(), runner_b.run_once()) == [0, 0]
    clock.advance(3600)
    assert await asyncio.gather(runner_a.run_once(), runner_b.run_once()) == [0, 0]
    assert sum(handler.calls.values()) == 20


async def test_a_failing_handler_is_retried_then_dropped_after_max_attempts(timers, clock, caplog):
    calls: list[int] = []

    async def broken(timer: Timer) -> None:
        calls.append(timer.attempts)
        raise RuntimeError("Teams said 502")

    runner = TimerRunner(timers, broken)
    timer = await timers.schedule("it", "s1", "accept_timeout", delay=0)
    with caplog.at_level(logging.ERROR, logger="switchboard.timers"):
        assert await runner.run_once() == 0  # the error does not propagate
        left = await timers.get(timer)
        assert left.attempts == 1 and left.lease_owner is None and left.lease_until is None
        assert ids(await timers.due()) == [timer.id]  # released: retried at once
        assert await runner.run_once() == 0
        assert await runner.run_once() == 0
    assert calls == [1, 2, 3]
    assert await timers.get(timer) is None
    assert await runner.run_once() == 0 and calls == [1, 2, 3]
    failures = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(failures) == 3 and all(r.exc_info for r in failures)
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelno == logging.ERROR
    assert timer.id in dropped[0].getMessage()


async def test_not_yet_retries_a_second_later_without_counting_as_a_failure(timers, clock,
                                                                            caplog):
    calls: list[int] = []

    async def early(timer: Timer) -> None:
        calls.append(timer.attempts)
        if len(calls) == 1:
            raise NotYet("the session's write has not landed")

    runner = TimerRunner(timers, early)
    timer = await timers.schedule("it", "s1", "offer", delay=0)
    with caplog.at_level(logging.WARNING, logger="switchboard.timers"):
        assert await runner.run_once() == 0
        assert await runner.run_once() == 0  # held for a second
        clock.advance(1)
        assert await runner.run_once() == 1
    assert len(calls) == 2 and await timers.get(timer) is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_handler_that_fails_once_fires_on_the_retry(timers, clock):
    calls: list[int] = []

    async def flaky(timer: Timer) -> None:
        calls.append(timer.attempts)
        if timer.attempts == 1:
            raise RuntimeError("once")

    runner = TimerRunner(timers, flaky)
    timer = await timers.schedule("it", "s1", "reminder", delay=0)
    assert await runner.run_once() == 0
    assert await runner.run_once() == 1
    assert calls == [1, 2] and await timers.get(timer) is None


async def test_a_crashed_owner_s_timer_fires_again_after_the_lease_expires(timers, other, clock):
    timer = await timers.schedule("it", "s1", "max_wait", delay=0)
    (due,) = await timers.due()
    crashed = await timers.claim(due)  # instance A claims, then dies before the handler ends
    assert crashed is not None

    handler = Recorder()
    runner_b = TimerRunner(other, handler)
    assert await runner_b.run_once() == 0  # the lease is live
    clock.advance(29.9)
    assert await runner_b.run_once() == 0
    clock.advance(0.1)  # lease_until reached: expired
    assert await runner_b.run_once() == 1
    assert handler.calls == {timer.id: 1} and handler.by[timer.id] == ["bot-b"]
    assert await runner_b.run_once() == 0
    # A's late finish, with its stale ETag, changes nothing and does not raise
    await timers.finish(crashed)
    assert handler.calls == {timer.id: 1}


async def test_a_late_finish_does_not_delete_the_new_owner_s_claim(timers, other, clock):
    timer = await timers.schedule("it", "s1", "max_wait", delay=0)
    slow = await timers.claim((await timers.due())[0])
    clock.advance(31)
    taken = await other.claim((await other.due())[0])
    assert taken is not None and taken.attempts == 2
    await timers.finish(slow)  # A's handler finally returned
    assert (await other.get(timer)).lease_owner == "bot-b"
    await timers.release(slow)  # nor does a late release free B's lease
    assert (await other.get(timer)).lease_owner == "bot-b"
    await other.finish(taken)
    assert await other.get(timer) is None


async def test_a_cancelled_timer_s_finish_is_quiet(timers, clock):
    async def cancel_it(timer: Timer) -> None:
        await timers.cancel(timer.key)  # e.g. the agent accepted meanwhile

    timer = await timers.schedule("it", "s1", "accept_timeout", delay=0)
    assert await TimerRunner(timers, cancel_it).run_once() == 1
    assert await timers.get(timer) is None


async def test_claim_needs_the_etag_it_was_read_with(timers):
    timer = await timers.schedule("it", "s1", "reminder", delay=0)
    with pytest.raises(ValueError):
        await timers.claim(timer.model_copy(update={"etag": None}))


async def test_timers_survive_a_restart(docs, make_docs, clock):
    before = TimerStore(docs, owner="bot-a", clock=clock)
    await before.schedule("it", "s1", "max_wait", delay=600, payload={"queue": "hardware"})
    await before.schedule("hr", "s2", "reminder", delay=60)
    await docs.close()

    restarted = make_docs()
    await restarted.open()
    try:
        after = TimerStore(restarted, owner="bot-a2", clock=clock)
        handler = Recorder()
        runner = TimerRunner(after, handler)
        clock.advance(60)
        assert await runner.run_once() == 1
        clock.advance(540)
        assert await runner.run_once() == 1
        assert sorted(t.rsplit(":", 2)[0] for t in handler.calls) == ["s1", "s2"]
    finally:
        await restarted.close()


# -- the background loop ---------------------------------------------------------------------


async def test_stop_lets_a_running_handler_finish(timers, clock):
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(timer: Timer) -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.set()

    timer = await timers.schedule("it", "s1", "offer", delay=0)
    runner = TimerRunner(timers, slow, interval=0.01)
    runner.start()
    await asyncio.wait_for(started.wait(), timeout=2)
    await runner.stop(grace=5)
    assert finished.is_set() and await timers.get(timer) is None


async def test_runner_start_stop_fires_a_due_timer_and_survives_a_failed_poll(timers, clock):
    fired = asyncio.Event()

    async def handler(timer: Timer) -> None:
        fired.set()

    real_due = timers.due
    polls = 0

    async def flaky_due(limit: int = 50) -> list[Timer]:
        nonlocal polls
        polls += 1
        if polls == 1:
            raise StoreUnavailable("blip")
        return await real_due(limit)

    timers.due = flaky_due
    await timers.schedule("it", "s1", "reminder", delay=0)
    runner = TimerRunner(timers, handler, interval=0.01)
    runner.start()
    runner.start()  # already running: no second loop
    try:
        await asyncio.wait_for(fired.wait(), timeout=0.9)
    finally:
        await runner.stop()
    assert polls >= 2
    assert await real_due() == []
    await runner.stop()  # stopping twice is fine
