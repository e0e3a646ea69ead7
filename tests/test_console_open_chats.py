"""The live view keeps a department's open chats between refreshes (console/open_chats.py):
a refresh reads the chats that changed, not every open chat again, and still shows every
change, on both stores.

- With 300 guests in a pipeline, a refresh after one of them moved reads a page, not 300,
  and shows the move; every phase a chat passes through shows, and a closed chat goes.
- A write stamped before the last refresh began, landing after it, is shown by the next.
- What no write announces (a session deleted under it, a write stamped by a clock far
  behind) is shown after the periodic full read.
- Too many changes at once: a full read, and the right lists.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console import open_chats
from console.live import Board
from pipelines.loader import load_config
from storage.agents import AgentStore
from storage.embedded import EmbeddedStore
from storage.layout import TENANT_DATA
from storage.models import Assignment, Phase, Search, SessionState
from storage.sessions import SessionStore
from tests.console_support import console_config
from tests.test_console_costs import History
from tests.test_console_costs import fresh_store as fresh_store  # a fixture
from tests.test_console_tail import Rows


def _board(docs, config) -> Board:
    return Board(config, docs, SessionStore(docs), AgentStore(docs), refresh=0)


def _it(snapshot) -> dict:
    return snapshot["departments"]["it"]


def _ids(rows) -> set[str]:
    return {row["session"] for row in rows}


async def test_a_refresh_reads_the_chats_that_changed_not_every_open_chat(fresh_store,
                                                                         tmp_path):
    config, _ = load_config(str(console_config(tmp_path)))
    # the sessions the live lists read (by `updated_at`; the figures' feeds are
    # tests/test_console_tail.py's)
    docs = Rows(fresh_store("open-chats"), order_by="updated_at")
    await docs.open()
    try:
        history = History(docs)
        sessions = SessionStore(docs)
        now = datetime.now(UTC)
        chats = [await history.chat("it", created=now - timedelta(minutes=5, seconds=i))
                 for i in range(300)]
        board = _board(docs, config)
        first = _it(await board.compute())
        assert first["pipeline"]["count"] == 300 and first["waiting"]["count"] == 0
        docs.rows = 0
        quiet = _it(await board.compute())
        assert quiet["pipeline"]["count"] == 300 and docs.rows == 0, docs.rows

        # one guest reaches the live-agent stage; the next refresh reads it alone, and shows it
        moved = await sessions.get("it", chats[7].id)
        moved = await sessions.save(moved.model_copy(update={
            "phase": Phase.WAITING, "routing": Search(stage_key="connect", mode="broadcast",
                                                      started_at=0)}))
        docs.rows = 0
        second = _it(await board.compute())
        assert docs.rows == 1, docs.rows
        assert second["pipeline"]["count"] == 299
        assert _ids(second["waiting"]["guests"]) == {moved.id}

        # an agent takes it, then it ends: each step shows, and the closed chat goes
        moved = await sessions.save(moved.model_copy(update={
            "phase": Phase.CONNECTED, "routing": None,
            "agent": Assignment(agent_id="aaaaaaaa-0000-0000-0000-000000000001",
                                agent_name="Alice")}))
        third = _it(await board.compute())
        assert third["waiting"]["count"] == 0 and _ids(third["connected"]["chats"]) == {
            moved.id}
        assert third["connected"]["by_agent"] == {"Alice": 1}
        await sessions.save(moved.model_copy(update={"state": SessionState.RESOLVED}))
        fourth = _it(await board.compute())
        assert fourth["connected"]["count"] == 0 and fourth["pipeline"]["count"] == 299
        # a new guest shows at once
        await history.chat("it", created=datetime.now(UTC))
        assert _it(await board.compute())["pipeline"]["count"] == 300
    finally:
        if hasattr(docs.inner, "delete_database"):
            await docs.inner.delete_database()
        await docs.close()


async def test_a_write_that_lands_after_a_refresh_began_is_shown(tmp_path):
    config, _ = load_config(str(console_config(tmp_path)))
    docs = EmbeddedStore(tmp_path / "late.sqlite3")
    await docs.open()
    try:
        history = History(docs)
        board = _board(docs, config)
        await history.chat("it", created=datetime.now(UTC))
        assert _it(await board.compute())["pipeline"]["count"] == 1
        await board.compute()  # from now on, only changes are read
        # stamped 3 seconds before that refresh began (its writer was slow), landed after
        await history.chat("it", created=datetime.now(UTC) - timedelta(seconds=3))
        assert _it(await board.compute())["pipeline"]["count"] == 2
        assert _it(await board.compute())["pipeline"]["count"] == 2
    finally:
        await docs.close()


async def test_what_no_write_announces_is_shown_after_the_full_read(tmp_path, monkeypatch):
    config, _ = load_config(str(console_config(tmp_path)))
    docs = EmbeddedStore(tmp_path / "resync.sqlite3")
    await docs.open()
    try:
        history = History(docs)
        now = datetime.now(UTC)
        gone = await history.chat("it", created=now - timedelta(minutes=1))
        await history.chat("it", created=now - timedelta(minutes=1))
        board = _board(docs, config)
        await board.compute()
        assert _it(await board.compute())["pipeline"]["count"] == 2
        # deleted under it, and a write stamped by a clock two minutes behind
        await docs.delete(TENANT_DATA, ("it", gone.id), gone.id)
        await history.chat("it", created=datetime.now(UTC) - timedelta(minutes=2))
        stale = _it(await board.compute())
        assert _ids(stale["pipeline"]["guests"]) >= {gone.id}  # not seen yet
        monkeypatch.setattr(open_chats, "RESYNC_SECONDS", 0.0)
        fresh = _it(await board.compute())
        assert fresh["pipeline"]["count"] == 2 and gone.id not in _ids(
            fresh["pipeline"]["guests"])
    finally:
        await docs.close()


async def test_too_many_changes_at_once_make_a_full_read(tmp_path, monkeypatch):
    monkeypatch.setattr(open_chats, "FULL_AFTER", 5)
    config, _ = load_config(str(console_config(tmp_path)))
    docs = EmbeddedStore(tmp_path / "burst.sqlite3")
    await docs.open()
    try:
        history = History(docs)
        sessions = SessionStore(docs)
        board = _board(docs, config)
        chats = [await history.chat("it", created=datetime.now(UTC)) for _ in range(3)]
        await board.compute()
        await board.compute()
        for chat in chats:  # all three close, and twelve new guests arrive
            current = await sessions.get("it", chat.id)
            await sessions.save(current.model_copy(update={"state": SessionState.ENDED}))
        for _ in range(12):
            await history.chat("it", created=datetime.now(UTC))
        after = _it(await board.compute())
        assert after["pipeline"]["count"] == 12
        assert not _ids(after["pipeline"]["guests"]) & {c.id for c in chats}
    finally:
        await docs.close()


@pytest.mark.parametrize("phase", [Phase.WAITING, Phase.CONNECTED])
async def test_a_department_past_the_list_limit_is_read_in_full(tmp_path, monkeypatch, phase):
    """Past LIST_LIMIT the list is cut, and a change beyond the cut cannot be told: every
    refresh reads the phases in full, as before the set was kept."""
    monkeypatch.setattr(open_chats, "LIST_LIMIT", 3)
    config, _ = load_config(str(console_config(tmp_path)))
    docs = Rows(EmbeddedStore(tmp_path / "cut.sqlite3"), order_by="updated_at")
    await docs.open()
    try:
        history = History(docs)
        for i in range(5):
            await history.chat("it", created=datetime.now(UTC) - timedelta(seconds=i),
                               phase=phase)
        board = _board(docs, config)
        await board.compute()
        docs.rows = 0
        again = _it(await board.compute())
        key = "waiting" if phase is Phase.WAITING else "connected"
        assert again[key]["count"] == 3
        assert docs.rows >= 3  # the cut phase was read again
    finally:
        await docs.close()
