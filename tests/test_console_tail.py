"""What a refresh of the live view reads between two folds, on the embedded store (the rows
it reads, counted; tests/test_console_costs.py counts the round trips on both stores).

- A refresh reads the open chats and what is new since the last one, not the history: the
  idle chats left in a pipeline and the items already read are not read again.
- A write whose timestamp was taken before an item already read, landing later, is counted.
- A tail too long to read at once says so (`catching_up`) until the fold passes it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import console.figures
from console.live import Board, rating_keys
from pipelines.loader import load_config
from storage.agents import AgentStore
from storage.embedded import EmbeddedStore
from storage.fold import Folder
from storage.models import Phase, SessionState
from storage.sessions import SessionStore
from tests.console_support import console_config
from tests.test_console_costs import History
from tests.test_query_plans import Recording


class Rows(Recording):
    """Counts the documents the queries return (with `order_by`: only those of queries in
    that order)."""

    def __init__(self, inner, order_by: str | None = None) -> None:
        super().__init__(inner)
        self.rows = 0
        self.order_by = order_by

    async def query(self, container, partition, equals, **kwargs):
        found = await super().query(container, partition, equals, **kwargs)
        if self.order_by is None or kwargs.get("order_by") == self.order_by:
            self.rows += len(found)
        return found


def _board(docs, config) -> Board:
    return Board(config, docs, SessionStore(docs), AgentStore(docs), refresh=0)


def _folder(docs, config) -> Folder:
    return Folder(docs, lambda: [t.id for t in config.tenants], rating_keys(config), lag=0)


async def test_a_refresh_reads_what_is_new_not_the_history(tmp_path):
    config, _ = load_config(str(console_config(tmp_path)))
    read = []
    for size in (10, 300):
        docs = Rows(EmbeddedStore(tmp_path / f"rows-{size}.sqlite3"))
        await docs.open()
        try:
            history = History(docs)
            now = datetime.now(UTC)
            for i in range(size):
                when = now - timedelta(days=1 + i % 30, minutes=i % 300)
                if i % 5:
                    await history.chat("it", created=when, closed=when + timedelta(minutes=3),
                                       state=SessionState.RESOLVED)
                else:  # a guest who left in the middle of a pipeline: open, idle for days
                    await history.chat("it", created=when)
            await _folder(docs, config).fold()
            # not folded yet: 20 chats of the last minutes, and the same open chats
            for i in range(20):
                when = now - timedelta(minutes=3, seconds=i)
                await history.chat("it", created=when, closed=when + timedelta(seconds=30),
                                   state=SessionState.DEFLECTED)
            for phase in (Phase.PIPELINE, Phase.WAITING, Phase.CONNECTED):
                await history.chat("it", created=now - timedelta(minutes=2), phase=phase)
            board = _board(docs, config)
            first = await board.compute()  # reads the 20 chats: the next page is sized so
            second = await board.compute()  # finds nothing new
            docs.rows = 0
            third = await board.compute()
            read.append(docs.rows)
            for snapshot in (first, second, third):
                it = snapshot["departments"]["it"]
                assert it["pipeline"]["count"] == 1  # the idle ones are not "in the pipeline"
                assert it["waiting"]["count"] == 1 and it["connected"]["count"] == 1
                assert it["today"]["deflected"] == 20 and it["catching_up"] is False
        finally:
            await docs.close()
    # the rollup: the open chats' read finds nothing written since the last refresh, and
    # the feeds of sessions take their items from it; nothing older, whatever the history
    assert read[0] == read[1] == 1, read


class FeedQueries(Recording):
    """Counts IT's queries by the field they are ordered by (a feed's), and their rows."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.calls: dict[str, int] = {}
        self.rows: dict[str, int] = {}

    async def query(self, container, partition, equals, **kwargs):
        found = await super().query(container, partition, equals, **kwargs)
        if not partition or partition[0] != "it":
            return found
        field = str(kwargs.get("order_by"))
        self.calls[field] = self.calls.get(field, 0) + 1
        self.rows[field] = self.rows.get(field, 0) + len(found)
        return found


async def test_the_feeds_of_sessions_come_from_the_open_chats_read(tmp_path):
    config, _ = load_config(str(console_config(tmp_path)))
    docs = FeedQueries(EmbeddedStore(tmp_path / "shared.sqlite3"))
    await docs.open()
    try:
        history = History(docs)
        now = datetime.now(UTC)
        for i in range(4):
            await history.chat("it", created=now - timedelta(minutes=8, seconds=i),
                               closed=now - timedelta(minutes=7), state=SessionState.RESOLVED)
        board = _board(docs, config)
        it = (await board.compute())["departments"]["it"]
        assert it["hour"]["started"] == 4 and it["hour"]["closed"] == {"resolved": 4}
        # the first refresh read the feeds by their own queries
        assert docs.calls["created_at"] == docs.calls["closed_at"] == 1
        docs.calls.clear()
        docs.rows.clear()
        # since then: 3 chats opened (one of them closed), 1 transferred away
        later = datetime.now(UTC)
        for i in range(3):
            await history.chat("it", created=later - timedelta(seconds=i),
                               closed=later if i == 0 else None,
                               state=SessionState.DEFLECTED if i == 0 else SessionState.OPEN)
        await history.chat("it", created=later, closed=later, sent_to="hr",
                           state=SessionState.TRANSFERRED)
        it = (await board.compute())["departments"]["it"]
        assert it["hour"]["started"] == 8
        assert it["hour"]["closed"] == {"resolved": 4, "deflected": 1, "transferred": 1}
        assert it["hour"]["sent"] == {"hr": 1}
        assert it["pipeline"]["count"] == 2
        # no feed of sessions was queried: their items came with the sessions written since
        assert "created_at" not in docs.calls and "closed_at" not in docs.calls, docs.calls
        assert docs.rows["updated_at"] == 4, docs.rows
        again = (await board.compute())["departments"]["it"]
        assert again["hour"] == it["hour"]  # read again within LATE: counted once
        # a chat already counted is written again (a rating added): counted as it now is
        rated = await history.sessions.get("it", "it-chat-000005")
        await history.sessions.save(rated.model_copy(update={
            "metadata": {**rated.metadata, "Feedback.Rating": 4}}))
        rerated = (await board.compute())["departments"]["it"]
        assert rerated["hour"]["rated"] == 1 and rerated["hour"]["feedback"] == 4.0
        assert rerated["hour"]["closed"] == it["hour"]["closed"]
    finally:
        await docs.close()


async def test_after_a_refresh_that_failed_the_feeds_are_queried_again(tmp_path, monkeypatch):
    config, _ = load_config(str(console_config(tmp_path)))
    docs = FeedQueries(EmbeddedStore(tmp_path / "failed.sqlite3"))
    await docs.open()
    try:
        history = History(docs)
        board = _board(docs, config)
        await board.compute()
        # the next refresh reads the open chats, then fails in the figures
        failing = console.figures.Tail.refresh

        async def fail(*args, **kwargs):
            raise OSError("the store went away")

        monkeypatch.setattr(console.figures.Tail, "refresh", fail)
        with pytest.raises(OSError):
            await board.compute()
        monkeypatch.setattr(console.figures.Tail, "refresh", failing)
        # a chat written before that refresh began (the open chats' read has it, and the next
        # one starts 5 s before that refresh: it cannot be relied on to hold it)
        await history.chat("it", created=datetime.now(UTC) - timedelta(seconds=30))
        docs.calls.clear()
        it = (await board.compute())["departments"]["it"]
        assert it["hour"]["started"] == 1
        assert docs.calls.get("created_at") == 1, docs.calls
    finally:
        await docs.close()


async def test_a_write_that_lands_late_is_counted(tmp_path):
    config, _ = load_config(str(console_config(tmp_path)))
    docs = EmbeddedStore(tmp_path / "late.sqlite3")
    await docs.open()
    try:
        history = History(docs)
        now = datetime.now(UTC)
        await history.chat("it", created=now - timedelta(seconds=1))
        board = _board(docs, config)
        assert (await board.compute())["departments"]["it"]["hour"]["started"] == 1
        # its timestamp was taken before the first one's, it landed after the refresh
        await history.chat("it", created=now - timedelta(seconds=3))
        assert (await board.compute())["departments"]["it"]["hour"]["started"] == 2
        assert (await board.compute())["departments"]["it"]["hour"]["started"] == 2
    finally:
        await docs.close()


async def test_a_tail_too_long_to_read_says_so_until_the_fold_passes(tmp_path, monkeypatch):
    monkeypatch.setattr(console.figures, "TAIL_LIMIT", 3)
    config, _ = load_config(str(console_config(tmp_path)))
    docs = EmbeddedStore(tmp_path / "behind.sqlite3")
    await docs.open()
    try:
        history = History(docs)
        now = datetime.now(UTC)
        for i in range(5):
            await history.chat("it", created=now - timedelta(minutes=5, seconds=i))
        board = _board(docs, config)
        for _ in range(2):  # the second refresh does not take the cut read for all there is
            assert (await board.compute())["departments"]["it"]["catching_up"] is True
        await _folder(docs, config).fold()
        it = (await board.compute())["departments"]["it"]
        assert it["catching_up"] is False and it["hour"]["started"] == 5
    finally:
        await docs.close()


def test_a_window_sums_the_slots_that_begin_in_it_and_shows_a_change_at_once():
    from console.figures import Slots
    from storage.stats import Counts, slot_of

    slots = Slots()
    base = datetime(2026, 3, 1, 23, 40, tzinfo=UTC)
    for minutes in range(0, 60, 10):  # 23:40 to 00:30 the next day, across midnight
        day, slot = slot_of(base + timedelta(minutes=minutes))
        slots.add(day, slot, Counts(started=1 + minutes))
    # [23:45, 00:20): the slots beginning 23:50, 00:00, 00:10
    start, end = base + timedelta(minutes=5), base + timedelta(minutes=40)
    assert slots.between(start, end).started == 11 + 21 + 31
    assert slots.between(base, base + timedelta(hours=1)).started == sum(
        1 + m for m in range(0, 60, 10))
    assert slots.between(start, end).started == 63  # asked again: the same
    slots.add(*slot_of(base + timedelta(minutes=20)), Counts(started=100))
    assert slots.between(start, end).started == 163
    slots.add(*slot_of(base + timedelta(minutes=20)), Counts(started=100), -1)
    assert slots.between(start, end).started == 63


async def test_a_feed_with_nothing_recent_is_not_read_back_through_history(tmp_path):
    """The first fold starts two days back; a feed with nothing since then (waits only
    weeks ago) is folded up to there all the same, and a refresh does not read it back
    through history. Before any fold, a refresh reads no further back than its window."""
    config, _ = load_config(str(console_config(tmp_path)))
    read = []
    for size in (10, 300):
        docs = Rows(EmbeddedStore(tmp_path / f"old-waits-{size}.sqlite3"))
        await docs.open()
        try:
            history = History(docs)
            now = datetime.now(UTC)
            for i in range(size):
                when = now - timedelta(days=3 + i % 30, minutes=i % 300)
                await history.chat("it", created=when, closed=when + timedelta(minutes=3),
                                   state=SessionState.RESOLVED,
                                   waits=[("answered", 10, when + timedelta(minutes=1))])
            board = _board(docs, config)
            await board.compute()  # the first refresh reads a page of each feed
            docs.rows = 0
            unfolded = await board.compute()  # no cursor yet: the window's start bounds it
            assert docs.rows <= 3 * 10 + 10, docs.rows
            assert unfolded["departments"]["it"]["today"]["started"] == 0
            await _folder(docs, config).fold()
            await board.compute()
            docs.rows = 0
            await board.compute()
            read.append(docs.rows)
        finally:
            await docs.close()
    assert read[0] == read[1] and read[1] <= 3 * 10 + 10, read
