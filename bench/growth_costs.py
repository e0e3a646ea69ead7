"""What a timer poll and an offer round cost in store operations, on a filled store.

Runs in the benchmark's process against the filled store (the bot's server stopped, so it
fires nothing meanwhile), with the objects `app.create_app` wires for the running bot (its
engine, routing, timer runner, deliverer) on top of `CountingStore`, which hands every call
to the real store and notes what it did: the store's own `OpStats` counts the calls, and
this adds the documents each call returned and how much of the partition key a query named.
On the embedded store every query's plan is asked from SQLite (`EXPLAIN QUERY PLAN` of the
store's own `query_sql`), so a query that scans instead of searching an index is named.

- timer poll: `TimerStore.due()` with nothing due, as the runner calls it every second
  (the first poll of a process also finds its cursor: printed apart);
- offer round: a new HR chat (played through the engine up to the `talk` stage, where it
  waits for an agent) and the runner's next `run_once()`: the poll, the claim, the round
  (the session, the agents' records, the offer card's lines, the write, the offer's
  delivery to the agent through the bench's connector, the agent's fairness record) and
  the timer's deletion. The chat is then cancelled, so the next size starts alike.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from app import ENGINE, SESSIONS, TIMERS, Settings, create_app
from pipelines.actions.base import GuestInput
from storage.documents import Document, DocumentStore, Partition, WriteOp, bounds
from storage.embedded import query_sql
from storage.models import Phase

AAD_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"

# containers whose size is the help desk's staff, not its history: a query across their
# partitions (the offer round's open seats, one per agent and pool) costs the same after a
# year of chats as on the first day
STAFF_CONTAINERS = ("agents",)


@dataclass
class Call:
    op: str
    container: str
    scope: str  # point, partition, prefix, all (across partitions), staff (across agents)
    documents: int = 0
    query: tuple[Any, ...] | None = None


class CountingStore(DocumentStore):
    """Every call goes to `inner`; `calls` says what each did. `stats` is the inner store's."""

    def __init__(self, inner: DocumentStore) -> None:
        super().__init__(inner.layout)
        self.inner = inner
        self.stats = inner.stats
        self.calls: list[Call] = []

    def reset(self) -> None:
        self.stats.reset()
        self.calls = []

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def open_container(self, container: str) -> None:
        await self.inner.open_container(container)

    async def purge_expired(self, limit: int = 500) -> int:
        return await self.inner.purge_expired(limit)

    async def ping(self) -> None:
        await self.inner.ping()

    async def read(self, container: str, partition: Partition, id: str) -> Document | None:
        doc = await self.inner.read(container, partition, id)
        self.calls.append(Call("read", container, "point", int(doc is not None)))
        return doc

    async def create(self, container: str, partition: Partition, id: str,
                     body: dict[str, Any]) -> Document:
        self.calls.append(Call("create", container, "point"))
        return await self.inner.create(container, partition, id, body)

    async def replace(self, container: str, partition: Partition, id: str,
                      body: dict[str, Any], if_match: str | None) -> Document:
        self.calls.append(Call("replace", container, "point"))
        return await self.inner.replace(container, partition, id, body, if_match)

    async def upsert(self, container: str, partition: Partition, id: str,
                     body: dict[str, Any]) -> Document:
        self.calls.append(Call("upsert", container, "point"))
        return await self.inner.upsert(container, partition, id, body)

    async def delete(self, container: str, partition: Partition, id: str,
                     if_match: str | None = None) -> bool:
        self.calls.append(Call("delete", container, "point"))
        return await self.inner.delete(container, partition, id, if_match)

    async def query(self, container: str, partition: Partition | None,
                    equals: dict[str, Any], *, order_by: str | None = None,
                    descending: bool = False, limit: int | None = None,
                    at_most: dict[str, Any] | None = None,
                    at_least: dict[str, Any] | None = None) -> list[Document]:
        docs = await self.inner.query(container, partition, equals, order_by=order_by,
                                      descending=descending, limit=limit, at_most=at_most,
                                      at_least=at_least)
        key = None if partition is None else self.key(container, partition, prefix=True)
        levels = len(self.layout[container].keys)
        scope = "all" if key is None else ("partition" if len(key) == levels else "prefix")
        if scope == "all" and container in STAFF_CONTAINERS:
            scope = "staff"  # across the agents' records: as many as there are agents
        self.calls.append(Call("query", container, scope, len(docs),
                               (key, dict(equals), order_by, descending, limit,
                                bounds(at_most, at_least))))
        return docs

    async def batch(self, container: str, partition: Partition,
                    ops: list[WriteOp]) -> list[Document]:
        self.calls.append(Call(f"batch({len(ops)})", container, "partition"))
        return await self.inner.batch(container, partition, ops)


@dataclass
class Cost:
    """One measured operation: calls, documents read, where queries went, time."""

    calls: int = 0
    documents: int = 0
    ms: float = 0.0
    ops: dict[str, int] = field(default_factory=dict)
    scopes: dict[str, int] = field(default_factory=dict)
    scans: list[str] = field(default_factory=list)  # embedded: queries not served by an index
    note: str = ""

    def shape(self) -> str:
        ops = " ".join(f"{k}x{v}" for k, v in sorted(self.ops.items()))
        return f"{self.calls} calls, {self.documents} docs read ({ops})"


def cost_of(store: CountingStore, seconds: float, db_path: Path | None) -> Cost:
    cost = Cost(calls=store.stats.round_trips, ms=1000 * seconds)
    for call in store.calls:
        cost.documents += call.documents
        name = f"{call.op} {call.container}"
        cost.ops[name] = cost.ops.get(name, 0) + 1
        if call.op == "query":
            cost.scopes[call.scope] = cost.scopes.get(call.scope, 0) + 1
    if db_path is not None:
        cost.scans = scans(db_path, store, [c for c in store.calls if c.query is not None])
    return cost


def scans(db_path: Path, store: DocumentStore, calls: list[Call]) -> list[str]:
    """The queries whose SQLite plan reads a table or a whole index instead of searching one,
    or sorts outside an index over more than one partition."""
    out = []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for call in calls:
            key, equals, order_by, descending, limit, ranges = call.query
            sql, args = query_sql(store.layout[call.container], key, equals, order_by,
                                  descending, limit, ranges)
            plan = [row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql,
                                                  [*args, time.time()])]
            bad = [p for p in plan if p.startswith("SCAN") or (
                "TEMP B-TREE" in p and call.scope != "partition")]
            if bad:
                out.append(f"{call.container} {equals} order {order_by}: {'; '.join(bad)}")
    finally:
        db.close()
    return out


def _reference(service_url: str, conversation: str) -> dict[str, Any]:
    aad = str(uuid.uuid4())
    activity = Activity().deserialize({
        "type": "message", "id": "probe-1", "channelId": "msteams", "serviceUrl": service_url,
        "from": {"id": f"29:{aad}", "name": "Offer Probe", "aadObjectId": aad},
        "recipient": {"id": "28:switchboard-bot", "name": "Switchboard"},
        "conversation": {"id": conversation, "conversationType": "personal",
                         "tenantId": AAD_TENANT},
        "locale": "en-US",
    })
    return TurnContext.get_conversation_reference(activity).serialize()


async def measure(settings: Settings, inner: DocumentStore, service_url: str,
                  db_path: Path | None) -> dict[str, Cost]:
    """The costs on the store `inner` (not open yet; closed at the end)."""
    store = CountingStore(inner)
    app = create_app(settings, docs=store)
    engine, sessions, runner = app[ENGINE], app[SESSIONS], app[TIMERS]
    out: dict[str, Cost] = {}
    await store.open()
    try:
        timers = runner.timers
        store.reset()
        started = time.perf_counter()
        await timers.due()
        out["first poll"] = cost_of(store, time.perf_counter() - started, db_path)
        store.reset()
        started = time.perf_counter()
        due = await timers.due()
        out["timer poll"] = cost_of(store, time.perf_counter() - started, db_path)
        if due:
            out["timer poll"].note = f"{len(due)} timers were due"

        conversation = f"a:1{uuid.uuid4().hex}"
        ref = _reference(service_url, conversation)
        result = await engine.start(conversation, {"Guest.Name": "Offer Probe"}, ref,
                                    tenant_id="hr", first=GuestInput(text="hi",
                                                                     activity_id="probe-1"))
        for n, text in enumerate(("E12345", "Something else"), start=2):
            result = await engine.handle(result.session,
                                         GuestInput(text=text, activity_id=f"probe-{n}"))
        session = result.session
        if session.phase != Phase.WAITING:
            raise RuntimeError(f"the offer probe's chat is not waiting: {session.phase} at "
                               f"{session.stage_key}")
        store.reset()
        started = time.perf_counter()
        fired = await runner.run_once()
        cost = out["offer round"] = cost_of(store, time.perf_counter() - started, db_path)
        after = await sessions.get(session.tenant_id, session.id)
        offers = [o for o in (after.routing.offers if after and after.routing else [])
                  if o.status == "open"]
        if not fired or not offers:
            raise RuntimeError(f"the offer round made no offer (timers fired {fired}, "
                               f"offers {offers}): is the HR agent available in the store?")
        cost.note = f"{len(offers)} offer made"
        await engine.handle(after, GuestInput(text="cancel", activity_id="probe-9"))
    finally:
        for callback in app.on_cleanup:  # the outbound pool, the clients, the store
            await callback(app)
    return out
