"""Filling a store with copies of the template chats, fast, in the bot's own document shapes.

The templates (bench/growth_chats.py) are played against the real bot on an embedded store;
`capture` reads which rows each chat added (a snapshot of every table before and after it).
A copy of a chat is its rows with every id that belongs to that chat alone replaced: the
32-hex ids (sessions, conversations, ETags) and the guest's UUIDs, found by pattern in the
rows and kept only when no shared document (agents, config) holds them. Everything that
refers to them (the partition key, a transfer's link, the conversation pointer) is rewritten
with them, as text, so a copy is the same document the bot wrote, under new ids.

- Embedded store: plain INSERTs in one transaction into the tables the store's own
  `schema()` declares (its indexes dropped during a large fill and rebuilt with the same
  DDL), then a WAL checkpoint.
- Cosmos DB: the store's own `batch()` (upserts, one partition per batch), many in flight.

Expiry: a copied row's `expires` is the template's moved back by the chat's age, drawn
evenly over the retention period, so the purge finds a steady trickle rather than a wall; a
row that would have expired by now (a de-duplication record lives a day) is not copied.
The times inside the bodies (created, closed, each line's) are moved back by the same age,
so history is spread over the retention period as in use; the timers of finished chats are not
copied (in a running bot they fire, or are cancelled, and are gone).
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from storage.documents import DocumentStore, WriteOp
from storage.embedded import EmbeddedStore, insert_sql, row_values, schema
from storage.layout import LAYOUT, TIMERS

_HEX32 = r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"
_UUID = r"(?<![0-9a-f-])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-f-])"
# a Teams personal chat's id as the benchmark makes it: "a:1" and 32 hex digits
_CONVERSATION = r"(?<=a:1)[0-9a-f]{32}(?![0-9a-f])"
TOKENS = re.compile(f"{_CONVERSATION}|{_HEX32}|{_UUID}")
FIELDS = ("pk", "k1", "id", "etag", "body")
RowKey = tuple[str, str, str]  # table, pk, id


@dataclass(frozen=True)
class Row:
    table: str
    pk: str
    k1: str
    id: str
    etag: str
    expires: float | None
    body: str

    @property
    def key(self) -> RowKey:
        return (self.table, self.pk, self.id)


def snapshot(path: Path) -> dict[RowKey, Row]:
    """Every row of every table of an embedded store's file (read while the bot runs: WAL)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        out = {}
        for container in LAYOUT.containers:
            try:
                rows = db.execute(f'SELECT pk, k1, id, etag, expires, body FROM "{container.name}"')
            except sqlite3.OperationalError:
                continue  # a lazy container nobody opened
            for r in rows:
                row = Row(container.name, *r)
                out[row.key] = row
        return out
    finally:
        db.close()


@dataclass
class Template:
    """One template chat: its rows as text with numbered holes where its own ids go."""

    kind: str
    rows: list[Row]
    tokens: list[str] = field(default_factory=list)
    # per row and field: the text with %s where an id goes, and which id
    parts: list[dict[str, tuple[str, tuple[int, ...]]]] = field(default_factory=list)

    def compile(self, shared: set[str]) -> None:
        found: dict[str, None] = {}
        for row in self.rows:
            for name in FIELDS:
                for token in TOKENS.findall(getattr(row, name)):
                    if token not in shared:
                        found.setdefault(token)
        self.tokens = list(found)
        index = {t: i for i, t in enumerate(self.tokens)}
        self.parts = []
        for row in self.rows:
            compiled: dict[str, tuple[str, tuple[int, ...]]] = {}
            for name in FIELDS:
                text, pieces, holes, at = getattr(row, name), [], [], 0
                for m in TOKENS.finditer(text):
                    if m.group() in index:
                        pieces.append(text[at:m.start()].replace("%", "%%"))
                        holes.append(index[m.group()])
                        at = m.end()
                pieces.append(text[at:].replace("%", "%%"))
                compiled[name] = ("%s".join(pieces), tuple(holes))
            if not compiled["pk"][1] and not compiled["id"][1]:
                raise ValueError(f"a row of template {self.kind!r} has no id of its own "
                                 f"({row.table} {row.pk} {row.id}): copies would collide")
            self.parts.append(compiled)

    def copy(self, number: int, age: float, now: float) -> Iterator[Row]:
        """Copy `number` (>= 1, unique in the store), written `age` seconds ago. A row whose
        time to live is shorter than that (a de-duplication record) is left out: in a store
        in use it has expired and been purged."""
        new = [f"{number:010x}{t[10:]}" if len(t) == 32 else f"{number:08x}{t[8:]}"
               for t in self.tokens]
        moved: dict[str, str] = {}  # this copy's times, each template time moved back once
        for row, compiled in zip(self.rows, self.parts, strict=True):
            if row.expires is not None and row.expires - age <= now:
                continue
            pk, k1, id_, etag, body = (text % tuple([new[i] for i in holes])
                                       for text, holes in compiled.values())
            yield Row(row.table, pk, k1, id_, etag,
                      None if row.expires is None else row.expires - age,
                      _moved_back(body, age, moved))


# the times the bot writes in documents (storage/models.py `utcnow`)
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def _moved_back(body: str, age: float, moved: dict[str, str]) -> str:
    """The body with every time in it `age` seconds earlier: a copy is a chat of its day, so
    what reads by time (the console's feeds, reports) finds history spread as in use."""
    def back(m: re.Match[str]) -> str:
        stamp = m.group()
        out = moved.get(stamp)
        if out is None:
            when = datetime.fromisoformat(stamp) - timedelta(seconds=age)
            out = moved[stamp] = when.isoformat(timespec="milliseconds")
        return out

    return STAMP.sub(back, body)


@dataclass
class Templates:
    chats: dict[str, Template]
    shared: list[Row]  # agents, config: in the store once

    @classmethod
    def capture(cls, global_rows: dict[RowKey, Row],
                chats: list[tuple[str, dict[RowKey, Row], dict[RowKey, Row]]],
                final: dict[RowKey, Row], aad_tenant: str) -> Templates:
        """`chats`: (kind, rows before the chat, rows after it); `final`: every row once all
        were played. A chat's rows are the ones it added, as they are in the end (a message
        marked sent later included); the rows there before any chat (agents, config) are
        shared. Timers are left out: a finished chat's timers have fired or been cancelled."""
        out: dict[str, Template] = {}
        for kind, before, after in chats:
            added = [final[k] for k in after if k not in before and k in final
                     and k not in global_rows and k[0] != TIMERS]
            out[kind] = Template(kind, added)
        shared = [final[k] for k in global_rows if k in final and k[0] != TIMERS]
        # ids the shared rows held before any chat (an agent's record later names the last
        # activity it saw: that id is still the chat's own)
        shared_tokens = {aad_tenant}
        for row in global_rows.values():
            shared_tokens.update(TOKENS.findall(row.body))
        for template in out.values():
            template.compile(shared_tokens)
        return cls(out, shared)


class Filler:
    """Adds template copies to a store until it holds a number of documents."""

    def __init__(self, templates: Templates, mix: dict[str, int], retention_seconds: float,
                 seed: int = 7) -> None:
        self.templates = templates
        self.order = _interleave(mix)
        self.retention = retention_seconds
        self.random = random.Random(seed)
        self.copies = 0
        self.documents = 0
        self.by_kind: dict[str, int] = {}

    def _chats(self, documents: int) -> Iterator[list[Row]]:
        """Copies, in the mix's order, until `documents` rows were made."""
        made = 0
        while made < documents:
            kind = self.order[self.copies % len(self.order)]
            self.copies += 1
            age = self.random.uniform(0, 0.98 * self.retention)
            rows = list(self.templates.chats[kind].copy(self.copies, age, time.time()))
            made += len(rows)
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            yield rows
        self.documents += made

    # -- embedded ----------------------------------------------------------------------

    async def create_embedded(self, path: Path) -> int:
        """A new store file, as the store creates it, with the shared rows; rows added."""
        store = EmbeddedStore(path)
        await store.open()
        await store.close()
        with _connect(path) as db:
            db.execute("BEGIN IMMEDIATE")
            _insert(db, self.templates.shared)
            db.execute("COMMIT")
        self.documents += len(self.templates.shared)
        return len(self.templates.shared)

    def fill_embedded(self, path: Path, documents: int) -> int:
        """Add about `documents` rows in one transaction; the indexes of a table that more
        than doubles are dropped first and rebuilt after, with the store's own DDL."""
        with _connect(path) as db:
            existing = {c.name: db.execute(f'SELECT COUNT(*) FROM "{c.name}"').fetchone()[0]
                        for c in LAYOUT.containers if not c.lazy}
            rebuild = documents > sum(existing.values())
            db.execute("BEGIN IMMEDIATE")
            if rebuild:
                for container in LAYOUT.containers:
                    if not container.lazy:
                        for number in range(len(container.indexes)):
                            db.execute(f'DROP INDEX IF EXISTS "{container.name}__{number}"')
            added = 0
            for rows in self._chats(documents):
                _insert(db, rows)
                added += len(rows)
            if rebuild:
                for container in LAYOUT.containers:
                    if not container.lazy:
                        for statement in schema(container):
                            db.execute(statement)
            db.execute("COMMIT")
            # the store never runs ANALYZE: its query plans here are the ones it gets in use
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return added

    # -- Cosmos DB -----------------------------------------------------------------------

    async def create_cosmos(self, docs: DocumentStore) -> int:
        await _upsert_all(docs, [self.templates.shared])
        self.documents += len(self.templates.shared)
        return len(self.templates.shared)

    async def fill_cosmos(self, docs: DocumentStore, documents: int,
                          in_flight: int = 16) -> int:
        chats = list(self._chats(documents))
        await _upsert_all(docs, chats, in_flight)
        return sum(len(c) for c in chats)


def _interleave(mix: dict[str, int]) -> list[str]:
    """The kinds spread evenly: 40 of one and 2 of another do not come in runs."""
    slots = sorted(((i + 0.5) / n, kind) for kind, n in mix.items() for i in range(n))
    return [kind for _, kind in slots]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _insert(db: sqlite3.Connection, rows: list[Row]) -> None:
    """The store's own write of each row (its indexed columns filled from the body)."""
    import json

    by_table: dict[str, list[tuple]] = {}
    for r in rows:
        container = LAYOUT[r.table]
        by_table.setdefault(r.table, []).append(
            (r.pk, r.k1, r.id, r.etag, r.expires, r.body,
             *row_values(container, json.loads(r.body))))
    for table, values in by_table.items():
        db.executemany(insert_sql(LAYOUT[table]), values)


async def _upsert_all(docs: DocumentStore, chats: list[list[Row]], in_flight: int = 16) -> None:
    """Each chat's rows as batches of upserts, one partition per batch."""
    import json

    batches: list[tuple[str, tuple[str, ...], list[WriteOp]]] = []
    for rows in chats:
        groups: dict[tuple[str, tuple[str, ...]], list[WriteOp]] = {}
        for r in rows:
            body = json.loads(r.body)
            key = tuple(body[name] for name in LAYOUT[r.table].keys)
            groups.setdefault((r.table, key), []).append(WriteOp("upsert", r.id, body))
        for (table, key), ops in groups.items():
            for start in range(0, len(ops), 100):
                batches.append((table, key, ops[start:start + 100]))
    gate = asyncio.Semaphore(in_flight)

    async def one(table: str, key: tuple[str, ...], ops: list[WriteOp]) -> None:
        async with gate:
            await docs.batch(table, key, ops)

    for start in range(0, len(batches), 2000):  # bounded: a few thousand tasks at a time
        await asyncio.gather(*(one(*b) for b in batches[start:start + 2000]))
