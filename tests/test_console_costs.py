"""The console's cost does not grow with history, and its figures are right, on both stores.

- A refresh of the live view costs the same number of store operations with a short and a
  long history (the figures come from rollups and the feeds' indexes, the lists from the
  open chats).
- Every query the console makes (live view, chat page, search, reports, the fold) is an
  index search in SQLite and is served by the Cosmos indexing policy.
- The figures are the facts: started, received, transferred (by target), deflected,
  answered with their speed, abandoned, timed out, the p90 wait, feedback; the same whether
  the fold has reached them or not; and a fold that dies half-way or runs twice at once
  counts nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from console.auth import Viewer
from console.live import Board, rating_keys
from console.reports import Reports
from console.views import Views
from pipelines.loader import load_config
from storage.agents import AgentStore
from storage.documents import DocumentStore
from storage.embedded import EmbeddedStore, query_sql
from storage.fold import CURSOR_ID, Folder
from storage.layout import CONSOLE, LAYOUT, cosmos_indexing_policy
from storage.models import (
    Assignment,
    Direction,
    Hop,
    Phase,
    Search,
    Session,
    SessionState,
    TranscriptEntry,
    TransferIntent,
)
from storage.sessions import SessionStore
from tests.console_support import console_config
from tests.test_query_plans import Query, Recording

ADMIN = Viewer("admin", "Admin", True, frozenset(), "csrf")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


class History:
    """Writes chats straight into a store, as the bot leaves them."""

    def __init__(self, docs: DocumentStore) -> None:
        self.sessions = SessionStore(docs)
        self.count = 0

    async def chat(self, tenant: str, *, created: datetime, closed: datetime | None = None,
                   state: SessionState = SessionState.OPEN, phase: Phase = Phase.PIPELINE,
                   words: str = "hello there", rating: int | None = None,
                   sent_to: str | None = None, received_from: str | None = None,
                   waits: list[tuple[str, float, datetime]] = (), name: str = "Guest"
                   ) -> Session:
        self.count += 1
        sid = f"{tenant}-chat-{self.count:06d}"
        metadata: dict[str, Any] = {"Guest.Name": f"{name} {self.count}"}
        if rating is not None:
            metadata["Feedback.Rating"] = rating
        hops = []
        if received_from:
            hops.append(Hop(from_session_id=f"from-{sid}", from_tenant_id=received_from,
                            from_tenant_name=received_from, to_session_id=sid,
                            to_tenant_id=tenant, to_tenant_name=tenant, at=_iso(created)))
        session = Session(
            id=sid, tenant_id=tenant, conversation_id=f"conv-{sid}", pipeline_id="main",
            stage_key="ask", state=state, phase=phase, metadata=metadata, hop_log=hops,
            created_at=_iso(created), updated_at=_iso(closed or created),
            closed_at=_iso(closed) if closed else None,
            transfer=TransferIntent(to_session_id=f"to-{sid}", to_tenant_id=sent_to,
                                    to_tenant_name=sent_to, to_pipeline_id="main",
                                    to_stage_key="connect") if sent_to else None,
            routing=Search(stage_key="connect", mode="broadcast", started_at=0)
            if phase == Phase.WAITING else None,
            agent=Assignment(agent_id="aaaaaaaa-0000-0000-0000-000000000001", agent_name="Alice")
            if phase == Phase.CONNECTED else None,
            transcript_count=2,
        )
        lines = [TranscriptEntry(session_id=sid, tenant_id=tenant, seq=0, direction=Direction.IN,
                                 sender="guest", text=words, at=_iso(created)),
                 TranscriptEntry(session_id=sid, tenant_id=tenant, seq=1,
                                 direction=Direction.OUT, sender="bot", text="OK",
                                 to="guest", at=_iso(created))]
        records = {f"wait-{i}": {"type": "wait", "at": _iso(at), "outcome": outcome,
                                 "waited": waited}
                   for i, (outcome, waited, at) in enumerate(waits)}
        return await self.sessions.create(session, lines, records)


async def _board(docs: DocumentStore, config) -> Board:
    return Board(config, docs, SessionStore(docs), AgentStore(docs), refresh=0)


async def _history(docs: DocumentStore, closed: int) -> None:
    history = History(docs)
    now = datetime.now(UTC)
    for i in range(closed):
        when = now - timedelta(days=i % 60, minutes=5 + i % 300)
        await history.chat("it" if i % 3 else "hr", created=when, closed=when + timedelta(
            minutes=3), state=SessionState.RESOLVED, rating=1 + i % 5, words=f"topic {i}",
            waits=[("answered", 10 + i % 100, when + timedelta(minutes=1))])
    # the same open chats in every history: two in a pipeline, one waiting, one connected
    for phase in (Phase.PIPELINE, Phase.PIPELINE, Phase.WAITING, Phase.CONNECTED):
        await history.chat("it", created=now - timedelta(minutes=2), phase=phase)


@pytest.fixture(params=["embedded", "cosmos"])
def fresh_store(request, tmp_path):
    """Makes stores of their own (a file, or a Cosmos database), each with no history."""
    made = []

    def make(name: str) -> DocumentStore:
        if request.param == "embedded":
            return EmbeddedStore(tmp_path / f"{name}.sqlite3")
        import uuid

        from storage.cosmos import CosmosStore

        server = request.getfixturevalue("cosmos_server")
        store = CosmosStore(server.endpoint, f"console-{name}-{uuid.uuid4().hex[:8]}",
                            key=server.key, connection_verify=False, max_retry_seconds=10.0)
        made.append(store)
        return store

    return make


async def test_a_refresh_costs_the_same_whatever_the_history(fresh_store, tmp_path):
    config, _ = load_config(str(console_config(tmp_path)))
    costs = []
    for size in (5, 300):
        docs = fresh_store(f"history-{size}")
        await docs.open()
        try:
            await _history(docs, size)
            folder = Folder(docs, lambda: [t.id for t in config.tenants], rating_keys(config),
                            lag=0, backfill_seconds=90 * 86_400)
            rounds = await folder.fold()
            assert sum(r.items for r in rounds.values()) >= size
            board = await _board(docs, config)
            await board.compute()  # warm: nothing cached that a refresh would not have
            docs.stats.reset()
            snapshot = await board.compute()
            costs.append(dict(docs.stats.by_op))
            it = snapshot["departments"]["it"]
            assert it["pipeline"]["count"] == 2 and it["waiting"]["count"] == 1
            assert it["connected"]["count"] == 1
        finally:
            if hasattr(docs, "delete_database"):
                await docs.delete_database()
            await docs.close()
    assert costs[0] == costs[1], costs
    assert sum(costs[0].values()) <= 8 * 2 + 4, costs  # per department, and the 4 agents


async def test_the_figures_for_a_range_cost_the_same_whatever_the_history(fresh_store,
                                                                          tmp_path):
    """A 31-day range ending today (its rollups, the cursor, the feeds past it) and one of
    31 days ending a week ago (its rollups only): the same store calls with 5 and 300 chats
    of history, 60 days of it."""
    config, _ = load_config(str(console_config(tmp_path)))
    today = datetime.now(UTC).date()
    ranges = ((today - timedelta(days=30), today),
              (today - timedelta(days=37), today - timedelta(days=7)))
    costs = []
    for size in (5, 300):
        docs = fresh_store(f"range-{size}")
        await docs.open()
        try:
            await _history(docs, size)
            folder = Folder(docs, lambda: [t.id for t in config.tenants], rating_keys(config),
                            lag=0, backfill_seconds=90 * 86_400)
            await folder.fold()
            reports = Reports(config, docs)
            cost = []
            for first, last in ranges:
                docs.stats.reset()
                figures = await reports.figures(ADMIN, first, last)
                cost.append(dict(docs.stats.by_op))
                assert list(figures["departments"]) == [t.id for t in config.tenants]
            costs.append(cost)
        finally:
            if hasattr(docs, "delete_database"):
                await docs.delete_database()
            await docs.close()
    assert costs[0] == costs[1], costs
    reaching_today, past = costs[0]
    # per department: its rollups, the fold's cursor, the three feeds past it
    assert reaching_today == {"query": 4 * len(config.tenants), "read": len(config.tenants)}
    assert past == {"query": len(config.tenants)}, past  # its rollups only


async def test_the_first_fold_over_a_long_history_costs_two_days_not_all_of_it(fresh_store,
                                                                               tmp_path):
    """The console turned on over a store with months of chats (or the store_growth bench's
    million documents): its first round folds what the last two days brought, then nothing
    more, instead of walking the whole history in one round."""
    config, _ = load_config(str(console_config(tmp_path)))
    docs = fresh_store("backfill")
    await docs.open()
    try:
        await _history(docs, 300)  # chats spread over 60 days, 5 a day
        folder = Folder(docs, lambda: [t.id for t in config.tenants], rating_keys(config),
                        lag=0)
        first = sum(r.items for r in (await folder.fold()).values())
        recent = 300 * 2 // 60 + 4  # their two days' worth (opened and closed), the open ones
        assert 4 <= first <= 2 * (recent + 10), first
        again = sum(r.items for r in (await folder.fold()).values())
        assert again == 0
    finally:
        if hasattr(docs, "delete_database"):
            await docs.delete_database()
        await docs.close()


async def test_every_console_query_is_an_index_search(tmp_path):
    """Live view, chat page, search, reports and the fold, recorded, then planned."""
    config, _ = load_config(str(console_config(tmp_path)))
    store = Recording(EmbeddedStore(tmp_path / "console-plans.sqlite3"))
    await store.open()
    try:
        await _history(store, 30)
        folder = Folder(store, lambda: [t.id for t in config.tenants], rating_keys(config),
                        lag=0)
        await folder.fold()
        await (await _board(store, config)).compute()
        views = Views(config, store, SessionStore(store))
        sessions = await SessionStore(store).list("it", limit=3)
        await views.chat(ADMIN, "it", sessions[0].id)
        await views.search(ADMIN, text="topic", name="guest")
        await views.search(ADMIN, state="open")
        today = datetime.now(UTC).date()
        await Reports(config, store).days(ADMIN, today - timedelta(days=30), today)
        queries = store.queries
    finally:
        await store.close()
    assert {q.container for q in queries} >= {"tenant_data", "console"}
    plans = EmbeddedStore(tmp_path / "console-plans.sqlite3")
    await plans.open()
    try:
        writer = plans._threads()[0]
        for q in queries:
            spec = LAYOUT[q.container]
            sql, args = query_sql(spec, q.key, dict(q.equals), q.order_by, q.descending,
                                  q.limit, q.ranges())

            def plan(db, sql=sql, args=args):
                return [row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql,
                                                       [*args, 0.0]).fetchall()]

            steps = await writer.run(plan, writer.db)
            assert steps and all(step.startswith("SEARCH") for step in steps), (q, steps)
            assert not any("TEMP B-TREE" in step for step in steps), (q, steps)
            _cosmos_serves(q)
    finally:
        await plans.close()


def _cosmos_serves(q: Query) -> None:
    spec = LAYOUT[q.container]
    policy = cosmos_indexing_policy(spec)
    indexed = {p["path"] for p in policy["includedPaths"]}
    used = {name for name, _ in (*q.equals, *q.at_most, *q.at_least)}
    if q.order_by:
        used.add(q.order_by)
    for name in used:
        assert f"/{name}/?" in indexed, f"{q}: {name} is not indexed in {spec.name}"
    if q.order_by and q.equals:
        fields = [name for name, _ in q.equals] + [q.order_by]
        composites = [[e["path"].strip("/") for e in group]
                      for group in policy.get("compositeIndexes", [])]
        assert any(sorted(c[:-1]) == sorted(fields[:-1]) and c[-1] == q.order_by
                   for c in composites), f"{q}: no composite index"


async def _facts_today(docs: DocumentStore) -> None:
    """Known facts, all of today (UTC), in IT and HR."""
    history = History(docs)
    now = datetime.now(UTC)
    at = now - timedelta(minutes=30) if now.hour or now.minute >= 40 else now
    done = at + timedelta(minutes=1)
    await history.chat("it", created=at, closed=done, state=SessionState.DEFLECTED)
    await history.chat("it", created=at, closed=done, state=SessionState.TRANSFERRED,
                       sent_to="hr")
    await history.chat("hr", created=done, closed=done, state=SessionState.RESOLVED,
                       received_from="it", rating=5)
    await history.chat("it", created=at, closed=done, state=SessionState.RESOLVED, rating=4,
                       waits=[("answered", 30, at), ("abandoned", 50, at),
                              ("timed_out", 700, at)])
    await history.chat("it", created=at)  # still open: started, nothing else yet


def _check_today(figures: dict[str, Any], tenant: str) -> None:
    if tenant == "it":
        assert figures["started"] == 4 and figures["deflected"] == 1
        assert figures["sent"] == {"hr": 1} and figures["received_total"] == 0
        assert figures["answered"] == 1 and figures["speed_to_answer"] == 30
        assert figures["abandoned"] == 1 and figures["timed_out"] == 1
        assert figures["p90_wait"] == 900  # the bucket of the 90th percentile: 600-900 s
        assert figures["feedback"] == 4 and figures["rated"] == 1
    else:
        assert figures["started"] == 0 and figures["received"] == {"it": 1}
        assert figures["feedback"] == 5


async def test_the_figures_are_the_facts_folded_or_not(docs, tmp_path):
    config, _ = load_config(str(console_config(tmp_path)))
    await _facts_today(docs)
    board = await _board(docs, config)
    today = datetime.now(UTC).date()
    reports = Reports(config, docs)
    before = await board.compute()  # nothing folded yet: all from the feeds' tails
    range_before = await reports.figures(ADMIN, today - timedelta(days=2), today)
    folder = Folder(docs, lambda: [t.id for t in config.tenants], rating_keys(config), lag=0)
    await folder.fold()
    after = await board.compute()  # all from the rollups
    range_after = await reports.figures(ADMIN, today - timedelta(days=2), today)
    for snapshot in (before, after):
        for tenant in ("it", "hr"):
            _check_today(snapshot["departments"][tenant]["today"], tenant)
    for figures in (range_before, range_after):
        for tenant in ("it", "hr"):
            _check_today(figures["departments"][tenant]["figures"], tenant)
    again = await folder.fold()  # nothing new: nothing written, nothing counted twice
    assert all(r.items == 0 and r.rollups == 0 for r in again.values())
    _check_today((await board.compute())["departments"]["it"]["today"], "it")
    report = await reports.days(ADMIN, today, today)
    row = next(r for r in report["rows"] if r["tenant"] == "it")
    assert (row["started"], row["deflected"], row["transferred"], row["abandoned"],
            row["timed_out"], row["answered"], row["speed_to_answer_s"], row["p90_wait_s"],
            row["feedback"]) == (4, 1, 1, 1, 1, 1, 30.0, 900.0, 4.0)
    assert report["transfers"] == {"IT": {"HR": 1}}


async def test_a_fold_that_dies_before_its_cursor_counts_nothing_twice(docs, tmp_path):
    config, _ = load_config(str(console_config(tmp_path)))
    await _facts_today(docs)
    folder = Folder(docs, lambda: [t.id for t in config.tenants], rating_keys(config), lag=0)

    class Died(Exception):
        pass

    real_create, real_replace = docs.create, docs.replace

    async def create(container, partition, id, body):
        if container == CONSOLE and id == CURSOR_ID:
            raise Died()
        return await real_create(container, partition, id, body)

    docs.create = create
    with pytest.raises(Died):
        await folder.fold()
    docs.create, docs.replace = real_create, real_replace
    await folder.fold()  # starts again from no cursor: the rollup skips what it has
    board = await _board(docs, config)
    _check_today((await board.compute())["departments"]["it"]["today"], "it")


async def test_two_folds_at_once_count_everything_once(docs, tmp_path):
    import asyncio

    config, _ = load_config(str(console_config(tmp_path)))
    await _facts_today(docs)
    folders = [Folder(docs, lambda: [t.id for t in config.tenants], rating_keys(config),
                      lag=0, owner=f"instance-{i}") for i in range(2)]
    await asyncio.gather(*(f.fold() for f in folders))
    for folder in folders:  # whoever lost a race finishes on the next round
        await folder.fold()
    board = await _board(docs, config)
    snapshot = await board.compute()
    _check_today(snapshot["departments"]["it"]["today"], "it")
    _check_today(snapshot["departments"]["hr"]["today"], "hr")


async def test_one_instance_folds_at_a_time(docs):
    first = Folder(docs, lambda: ["it"], owner="a", lease_seconds=60)
    second = Folder(docs, lambda: ["it"], owner="b", lease_seconds=60)
    assert await first.take_lease()
    assert not await second.take_lease()
    assert await first.take_lease()  # renewed by its holder
