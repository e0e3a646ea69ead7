"""Every query the bot makes is served by an index, on both backends (issue 10).

A whole scenario (guests, a transfer, agents offered and accepting, timers, the sweep, the
admin's lists) runs against a store that records every query. Then, for the embedded store,
SQLite's own query planner must answer each one with an index search (never a scan of a
table, nor a sort of everything that matches: both grow with history); and for Cosmos DB,
each one must filter and sort on fields the container's indexing policy indexes, with a
composite index where it sorts by one field and filters on others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage.cosmos import query_sql as cosmos_sql
from storage.documents import Bound, Document, DocumentStore, Partition, bounds
from storage.embedded import EmbeddedStore, query_sql
from storage.layout import LAYOUT, cosmos_indexing_policy
from storage.sessions import SessionStore
from tests.agent_desk import AGENTS, ALICE, BOB, Desk, waiting_guest
from tests.connector import start_connector
from tests.harness import BotServer, FakeClock, settings_for, texts


@dataclass(frozen=True)
class Query:
    container: str
    key: tuple[str, ...] | None
    equals: tuple[tuple[str, Any], ...]
    order_by: str | None
    descending: bool
    limit: int | None
    at_most: tuple[tuple[str, Any], ...]
    at_least: tuple[tuple[str, Any], ...] = ()

    def ranges(self) -> list[Bound]:
        return bounds(dict(self.at_most), dict(self.at_least))


class Recording(DocumentStore):
    """A store that records the queries made through it (and otherwise is the one it wraps)."""

    def __init__(self, inner: DocumentStore) -> None:
        super().__init__(inner.layout)
        self.inner = inner
        self.queries: set[Query] = set()
        self.stats = inner.stats

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def open_container(self, container: str) -> None:
        await self.inner.open_container(container)

    async def ping(self) -> None:
        await self.inner.ping()

    async def read(self, container, partition, id):
        return await self.inner.read(container, partition, id)

    async def create(self, container, partition, id, body):
        return await self.inner.create(container, partition, id, body)

    async def replace(self, container, partition, id, body, if_match):
        return await self.inner.replace(container, partition, id, body, if_match)

    async def upsert(self, container, partition, id, body):
        return await self.inner.upsert(container, partition, id, body)

    async def delete(self, container, partition, id, if_match=None):
        return await self.inner.delete(container, partition, id, if_match)

    async def batch(self, container, partition, ops):
        return await self.inner.batch(container, partition, ops)

    async def purge_expired(self, limit: int = 500) -> int:
        return await self.inner.purge_expired(limit)

    async def query(self, container: str, partition: Partition | None, equals: dict[str, Any],
                    *, order_by=None, descending=False, limit=None,
                    at_most=None, at_least=None) -> list[Document]:
        key = None if partition is None else self.key(container, partition, prefix=True)
        self.queries.add(Query(container, key, tuple(sorted(equals.items())), order_by,
                               descending, limit, tuple(sorted((at_most or {}).items())),
                               tuple(sorted((at_least or {}).items()))))
        return await self.inner.query(container, partition, equals, order_by=order_by,
                                      descending=descending, limit=limit, at_most=at_most,
                                      at_least=at_least)


async def _scenario(tmp_path) -> set[Query]:
    """Guests, a transfer, agents, timers, the sweep and the admin's lists, recorded."""
    connector, runner = await start_connector()
    store = Recording(EmbeddedStore(tmp_path / "plans.sqlite3"))
    clock = FakeClock()
    server = await BotServer(settings_for(tmp_path, config_path=str(AGENTS)), docs=store,
                             clock=clock).start()
    try:
        desk = Desk(server, connector, clock)
        alice, bob = await desk.agent(ALICE), await desk.agent(BOB)
        guest = await waiting_guest(desk)
        await server.fire_timers()
        await desk.accept(alice, desk.offers(alice)[0])
        await guest.say("Still black")
        await alice.say("Try this")
        await alice.say("waiting")
        await alice.say("chats")
        await alice.say("transfer HR")
        await bob.say("status away")
        await bob.say("status available")
        clock.advance(3600)
        await server.fire_timers()
        await server.sweep()
        other = await waiting_guest(desk, "The printer is on fire")
        clock.advance(30)
        await server.fire_timers()
        assert texts(other._new()) is not None
        sessions = SessionStore(store)
        await sessions.list(limit=20)
        await sessions.list("it", limit=20)
        from storage.models import SessionState

        await sessions.list("it", SessionState.OPEN, limit=20)
        await sessions.list(None, SessionState.RESOLVED, limit=20)
        await sessions.records("it", "faq")
        await sessions.records(None, "faq")
    finally:
        await server.stop()
        await runner.cleanup()
    return store.queries


async def test_every_query_of_a_scenario_is_an_index_search_in_sqlite(tmp_path):
    queries = await _scenario(tmp_path)
    assert len(queries) >= 8, queries  # the scenario exercised the query paths
    store = EmbeddedStore(tmp_path / "plans.sqlite3")
    await store.open()
    try:
        writer = store._threads()[0]
        for q in queries:
            spec = LAYOUT[q.container]
            sql, args = query_sql(spec, q.key, dict(q.equals), q.order_by, q.descending,
                                  q.limit, q.ranges())

            def plan(db, sql=sql, args=args):
                return [row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql,
                                                       [*args, 0.0]).fetchall()]

            steps = await writer.run(plan, writer.db)
            where = f"{q} -> {steps}"
            # an ordered walk of an index that stops at LIMIT with nothing to filter (the
            # oldest timer; the latest sessions, from an index that holds only sessions)
            # reads what it returns: as good as a search
            walk = (q.limit is not None and not q.at_most and not q.at_least
                    and {name for name, _ in q.equals} <= {"type"})
            assert steps and all(step.startswith("SEARCH") or (
                walk and step.startswith("SCAN") and "USING" in step and "INDEX" in step)
                for step in steps), where
            assert not any("TEMP B-TREE" in step for step in steps), where
    finally:
        await store.close()


async def test_every_query_of_a_scenario_is_indexed_by_the_cosmos_policy(tmp_path):
    queries = await _scenario(tmp_path)
    for q in queries:
        spec = LAYOUT[q.container]
        policy = cosmos_indexing_policy(spec)
        indexed = {p["path"] for p in policy["includedPaths"]}
        used = {name for name, _ in (*q.equals, *q.at_most, *q.at_least)}
        if q.order_by:
            used.add(q.order_by)
        for name in used:
            assert f"/{name}/?" in indexed, f"{q}: {name} is not indexed in {spec.name}"
        sql, _ = cosmos_sql(spec, q.key, dict(q.equals), q.order_by, q.descending, q.limit,
                            q.ranges())
        pinned = [name for name, value in q.equals if value is not None]
        if q.order_by and pinned:
            # ORDER BY names the pinned fields too: served by a composite index, which
            # exists with the same fields and orders
            order = [part.split('"') for part in sql.split(" ORDER BY ", 1)[1].split(", ")]
            wanted = [(f[1], "DESC" in f[2]) for f in order]
            composites = [[(e["path"].strip("/"), e["order"] == "descending") for e in group]
                          for group in policy.get("compositeIndexes", [])]
            reverse = [(name, not desc) for name, desc in wanted]
            # a composite index serves its own order and its exact reverse
            assert wanted in composites or reverse in composites, (
                f"{q}: no composite index for ORDER BY {wanted}")


def test_the_deployment_creates_the_containers_the_code_declares():
    """infra/cosmos-containers.json (what the Bicep creates) is generated from the layout."""
    from pathlib import Path

    from storage.layout import cosmos_definitions

    path = Path(__file__).resolve().parents[1] / "infra" / "cosmos-containers.json"
    if not path.exists():
        raise AssertionError(f"{path} is missing: python -m storage.layout > {path}")
    on_disk = json.loads(path.read_text())
    declared = on_disk["containers"] if isinstance(on_disk, dict) else on_disk
    assert declared == cosmos_definitions(), (
        "infra/cosmos-containers.json is out of date: regenerate it with "
        "`python -m storage.layout`"
    )
