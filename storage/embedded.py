"""The embedded default store: one SQLite file, no server, survives a restart.

No SQLite call runs on the event loop: writes go to one writer thread (its own connection,
so waiting for another process's lock, a WAL checkpoint's fsync or a purge never freezes the
loop) and reads to a reader thread (WAL lets it read while the writer writes). Each store
call is one hand-off to a thread and back.

One table per container (storage/layout.py), with the partition key in columns and one
SQLite expression index per declared `Index`, so every query the bot makes is answered from
an index and costs the same with a thousand or a million documents (tests/test_query_plans.py
checks the plans). WAL mode lets several processes share the file, and every check-and-set
runs inside one `BEGIN IMMEDIATE` transaction, so ETags hold across processes as on Cosmos.

Expiry: a body's `ttl` sets the row's `expires` (epoch seconds); expired rows are invisible
at once and `purge_expired` deletes them in bounded batches, then hands the freed pages back
(`auto_vacuum=INCREMENTAL`), so the file does not grow without bound.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from storage.documents import (
    AlreadyExists,
    Bound,
    Document,
    DocumentStore,
    Key,
    NotFound,
    Partition,
    PreconditionFailed,
    StoreUnavailable,
    WriteOp,
    bounds,
    ttl_of,
)
from storage.layout import LAYOUT, Container, Layout

T = TypeVar("T")

_FIELD_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
SCHEMA_VERSION = 3


def _plain(name: str) -> str:
    if not isinstance(name, str) or not name or not set(name) <= _FIELD_NAME_CHARS:
        raise ValueError(f"not a plain field name: {name!r}")
    return name


def _column(name: str) -> str:
    return f'"c_{_plain(name)}"'


def _field(container: Container, name: str) -> str:
    """A field in SQL: its own column when an index names it, else read from the JSON."""
    if name in container.paths():
        return _column(name)
    return f"json_extract(body, '$.{_plain(name)}')"


def _type_of(container: Container, name: str) -> str:
    if name in container.paths():
        return f"typeof({_column(name)})"
    return f"json_type(body, '$.{_plain(name)}')"


def _scalar(value: Any) -> Any:
    """What an indexed column holds: strings and numbers as they are (a boolean as 1 or 0,
    as SQLite's JSON functions give it); anything else is not indexable."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str | int | float):
        return value
    return None


# an ETag is this process's random prefix and a count: unique across processes sharing the
# file, and cheap (a write makes one)
_ETAG_PREFIX = uuid.uuid4().hex[:12]
_etags = itertools.count(1)


def _new_etag() -> str:
    return f'"{_ETAG_PREFIX}{next(_etags):x}"'


def _pk(key: Key) -> str:
    """The whole key in one column: the value itself, or a JSON array for several levels."""
    if len(key) == 1:
        return key[0]
    if all(part.isascii() and part.isprintable() and '"' not in part and "\\" not in part
           for part in key):
        return '["' + '","'.join(key) + '"]'  # what json.dumps writes for these, faster
    return json.dumps(list(key), separators=(",", ":"))


def _unpk(container: Container, text: str) -> Key:
    if not container.hierarchical:
        return (text,)
    if "\\" not in text:  # what `_pk` writes without json.dumps: split it back the same way
        return tuple(text[2:-2].split('","'))
    return tuple(json.loads(text))


def schema(container: Container) -> list[str]:
    """The table and its indexes (also read by tests/test_query_plans.py and bench/)."""
    table = f'"{container.name}"'
    fields = "".join(f", {_column(name)}" for name in container.paths())
    out = [
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " pk TEXT NOT NULL, k1 TEXT NOT NULL, id TEXT NOT NULL, etag TEXT NOT NULL,"
        f" expires REAL, body TEXT NOT NULL{fields}, UNIQUE (pk, id))",
        f'CREATE INDEX IF NOT EXISTS "{container.name}__expires" ON {table}(expires)'
        " WHERE expires IS NOT NULL",
    ]
    for number, index in enumerate(container.indexes):
        lead = {"partition": ["pk"], "prefix": ["k1"], "all": []}[index.scope]
        names = index.fields[1:] if index.kind is not None else index.fields
        columns = [*lead, *(_column(name) for name in names), "id"]
        where = f" WHERE {_column('type')} = '{_plain(index.kind)}'" if index.kind else ""
        out.append(
            f'CREATE INDEX IF NOT EXISTS "{container.name}__{number}" ON {table}'
            f"({', '.join(columns)}){where}"
        )
    return out


def _upgrade(db: sqlite3.Connection, container: Container) -> None:
    """An existing table from an earlier version of this layout: the indexed fields get their
    columns (filled from the stored JSON) and the indexes are made again."""
    table = f'"{container.name}"'
    have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if not have:
        return  # no such table yet: schema() makes it
    for name in container.paths():
        column = _column(name)
        if column.strip('"') not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            db.execute(f"UPDATE {table} SET {column} = json_extract(body, '$.{_plain(name)}')")
    for (index,) in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND "
                               "tbl_name=? AND name LIKE ?", (container.name,
                                                               f"{container.name}__%")).fetchall():
        db.execute(f'DROP INDEX "{index}"')


@functools.cache
def insert_sql(container: Container) -> str:
    """The write of one document: its columns, replacing what the id held."""
    names = [_column(name) for name in container.paths()]
    columns = ", ".join(["pk", "k1", "id", "etag", "expires", "body", *names])
    marks = ", ".join("?" * (6 + len(names)))
    updates = ", ".join(f"{c}=excluded.{c}" for c in ["etag", "expires", "body", *names])
    return (f'INSERT INTO "{container.name}"({columns}) VALUES ({marks})'
            f" ON CONFLICT(pk, id) DO UPDATE SET {updates}")


@functools.cache
def update_sql(container: Container) -> str:
    """A replace: every column but the keys, for the row named by (pk, id)."""
    names = [_column(name) for name in container.paths()]
    sets = ", ".join(f"{c}=?" for c in ["etag", "expires", "body", *names])
    return f'UPDATE "{container.name}" SET {sets} WHERE pk=? AND id=?'


@functools.cache
def create_sql(container: Container) -> str:
    """A create: a new row, or one over an expired row; a live row stays (no change)."""
    table = f'"{container.name}"'
    return insert_sql(container) + f" WHERE {table}.expires IS NOT NULL AND {table}.expires <= ?"


def row_values(container: Container, body: dict[str, Any]) -> list[Any]:
    """The indexed columns' values of a body, in `insert_sql`'s order."""
    return [_scalar(body.get(name)) for name in container.paths()]


class _Thread:
    """One thread that owns one SQLite connection; calls are handed to it in order.

    A call is a queue put, and the answer comes back to the event loop with one
    `call_soon_threadsafe`: the least a hand-off between threads costs in asyncio."""

    def __init__(self, name: str) -> None:
        self.db: sqlite3.Connection | None = None
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            loop, future, fn, args = call
            try:
                result = fn(*args)
            except BaseException as exc:  # handed back to the caller, raised there
                loop.call_soon_threadsafe(_fail, future, exc)
            else:
                loop.call_soon_threadsafe(_resolve, future, result)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((loop, future, fn, args))
        return await future

    def shutdown(self) -> None:
        self._calls.put(None)
        self._thread.join()


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class EmbeddedStore(DocumentStore):
    def __init__(
        self,
        path: str | Path,
        *,
        layout: Layout = LAYOUT,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 10.0,
    ) -> None:
        super().__init__(layout)
        self.path = str(path)
        self.clock = clock
        self.busy_timeout = busy_timeout
        self._writer: _Thread | None = None
        self._reader: _Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def _connect(self, thread: _Thread, setup: bool) -> None:
        db = sqlite3.connect(
            self.path, isolation_level=None, timeout=self.busy_timeout, check_same_thread=False
        )
        if setup:
            # only takes effect on a new, empty file: page reuse plus incremental_vacuum
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if setup:
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                for container in self.layout.containers:
                    if version < SCHEMA_VERSION:
                        _upgrade(db, container)
                    for statement in schema(container):
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            except BaseException:
                db.execute("ROLLBACK")
                db.close()
                raise
            db.execute("COMMIT")
        thread.db = db

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        writer = _Thread("sqlite-writer")
        try:
            await writer.run(self._connect, writer, True)
        except sqlite3.Error as exc:
            writer.shutdown()
            raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc
        reader = writer
        if self.path != ":memory:":  # a second connection to :memory: is another database
            reader = _Thread("sqlite-reader")
            await reader.run(self._connect, reader, False)
        self._writer, self._reader = writer, reader

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        for thread in {id(t): t for t in (reader, writer) if t is not None}.values():
            if thread.db is not None:
                await thread.run(thread.db.close)
            thread.shutdown()

    def _threads(self) -> tuple[_Thread, _Thread]:
        if self._writer is None or self._reader is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._writer, self._reader

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        reader = self._threads()[1]
        try:
            return await reader.run(fn, reader.db, *args)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc

    async def _write(self, container: str, key: Key, ops: list[WriteOp]) -> list[Document]:
        writer = self._threads()[0]
        try:
            return await writer.run(self._transaction, writer.db, container, key, ops,
                                    self.clock())
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc

    async def ping(self) -> None:
        await self._read(lambda db: db.execute("SELECT 1").fetchone())

    # -- in the threads ----------------------------------------------------------------

    @staticmethod
    def _row(db: sqlite3.Connection, table: str, pk: str, id: str, now: float):
        row = db.execute(
            f'SELECT etag, body, expires FROM "{table}" WHERE pk=? AND id=?', (pk, id)
        ).fetchone()
        if row is not None and row[2] is not None and row[2] <= now:
            return None  # expired: as good as gone
        return row

    def _apply(
        self, db: sqlite3.Connection, container: Container, key: Key, op: WriteOp, now: float
    ) -> Document | None:
        """One write in the caller's transaction, in one statement (a failed condition is
        told apart, NotFound or PreconditionFailed, by reading the row then only)."""
        pk, table = _pk(key), container.name
        live = "(expires IS NULL OR expires > ?)"
        if op.kind == "delete":
            if op.if_match is None:
                db.execute(f'DELETE FROM "{table}" WHERE pk=? AND id=?', (pk, op.id))
                return None
            cursor = db.execute(f'DELETE FROM "{table}" WHERE pk=? AND id=? AND etag=? AND {live}',
                                (pk, op.id, op.if_match, now))
            if cursor.rowcount == 0:
                raise self._failed(db, table, pk, op.id, now)
            return None
        body = self.with_keys(table, key, op.id, op.body or {})
        ttl = ttl_of(container, body)
        etag = _new_etag()
        body["_etag"] = etag
        text = json.dumps(body, separators=(",", ":"))
        expires = None if ttl is None else now + ttl
        indexed = row_values(container, body)
        if op.kind == "replace":
            sql = update_sql(container) + f" AND {live}"
            args = [etag, expires, text, *indexed, pk, op.id, now]
            if op.if_match is not None:
                sql += " AND etag=?"
                args.append(op.if_match)
            if db.execute(sql, args).rowcount == 0:
                raise self._failed(db, table, pk, op.id, now)
        elif op.kind == "create":
            # over an expired row, as if it were gone; over a live one, nothing changes
            cursor = db.execute(create_sql(container),
                                (pk, key[0], op.id, etag, expires, text, *indexed, now))
            if cursor.rowcount == 0:
                raise AlreadyExists(op.id)
        else:
            db.execute(insert_sql(container),
                       (pk, key[0], op.id, etag, expires, text, *indexed))
        return Document(op.id, key, body, etag)

    def _failed(self, db: sqlite3.Connection, table: str, pk: str, id: str,
                now: float) -> Exception:
        return NotFound(id) if self._row(db, table, pk, id, now) is None else (
            PreconditionFailed(id))

    def _transaction(
        self, db: sqlite3.Connection, name: str, key: Key, ops: list[WriteOp], now: float
    ) -> list[Document]:
        container = self.layout[name]
        if len(ops) == 1:  # one statement is atomic by itself
            found = self._apply(db, container, key, ops[0], now)
            return [found] if found is not None else []
        db.execute("BEGIN IMMEDIATE")
        try:
            out = [self._apply(db, container, key, op, now) for op in ops]
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return [d for d in out if d is not None]

    # -- primitives ------------------------------------------------------------------

    async def read(self, container: str, partition: Partition, id: str) -> Document | None:
        key = self.key(container, partition)
        self.stats.record("read")
        row = await self._read(self._row, container, _pk(key), id, self.clock())
        if row is None:
            return None
        return Document(id, key, json.loads(row[1]), row[0])

    async def create(
        self, container: str, partition: Partition, id: str, body: dict[str, Any]
    ) -> Document:
        key = self.key(container, partition)
        self.stats.record("create")
        return (await self._write(container, key, [WriteOp("create", id, body)]))[0]

    async def replace(
        self,
        container: str,
        partition: Partition,
        id: str,
        body: dict[str, Any],
        if_match: str | None,
    ) -> Document:
        key = self.key(container, partition)
        self.stats.record("replace")
        return (await self._write(container, key, [WriteOp("replace", id, body, if_match)]))[0]

    async def upsert(
        self, container: str, partition: Partition, id: str, body: dict[str, Any]
    ) -> Document:
        key = self.key(container, partition)
        self.stats.record("upsert")
        return (await self._write(container, key, [WriteOp("upsert", id, body)]))[0]

    async def delete(
        self, container: str, partition: Partition, id: str, if_match: str | None = None
    ) -> bool:
        key = self.key(container, partition)
        self.stats.record("delete")
        writer = self._threads()[0]

        def run(db: sqlite3.Connection, now: float) -> bool:
            if if_match is not None:
                self._transaction(db, container, key, [WriteOp("delete", id, None, if_match)],
                                  now)
                return True
            cursor = db.execute(
                f'DELETE FROM "{container}" WHERE pk=? AND id=? RETURNING expires',
                (_pk(key), id))
            gone = cursor.fetchall()  # an autocommitted statement: one round of its own
            return any(expires is None or expires > now for (expires,) in gone)

        try:
            return await writer.run(run, writer.db, self.clock())
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc

    async def query(
        self,
        container: str,
        partition: Partition | None,
        equals: dict[str, Any],
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        at_most: dict[str, Any] | None = None,
        at_least: dict[str, Any] | None = None,
    ) -> list[Document]:
        spec = self.layout[container]
        key = None if partition is None else self.key(container, partition, prefix=True)
        sql, args = query_sql(spec, key, equals, order_by, descending, limit,
                              bounds(at_most, at_least))
        self.stats.record("query")
        if limit is not None and int(limit) <= 0:
            return []

        def run(db: sqlite3.Connection, now: float) -> list[tuple[str, str, str, str]]:
            return db.execute(sql, [*args, now]).fetchall()

        rows = await self._read(run, self.clock())
        return [Document(r[0], _unpk(spec, r[1]), json.loads(r[3]), r[2]) for r in rows]

    async def batch(
        self, container: str, partition: Partition, ops: list[WriteOp]
    ) -> list[Document]:
        key = self.key(container, partition)
        self.stats.record("batch")
        if not ops:
            return []
        return await self._write(container, key, ops)

    async def purge_expired(self, limit: int = 500) -> int:
        writer = self._threads()[0]
        names = [c.name for c in self.layout.containers if c.ttl]

        def run(db: sqlite3.Connection, now: float) -> int:
            deleted = 0
            for name in names:
                if deleted >= limit:
                    break
                cursor = db.execute(
                    f'DELETE FROM "{name}" WHERE rowid IN (SELECT rowid FROM "{name}"'
                    " WHERE expires IS NOT NULL AND expires <= ? LIMIT ?)",
                    (now, limit - deleted),
                )
                deleted += cursor.rowcount
            if deleted:
                db.execute("PRAGMA incremental_vacuum")
            return deleted

        try:
            return await writer.run(run, writer.db, self.clock())
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"embedded store at {self.path}: {exc}") from exc


def query_sql(
    container: Container,
    key: Key | None,
    equals: dict[str, Any],
    order_by: str | None,
    descending: bool,
    limit: int | None,
    ranges: list[Bound],
) -> tuple[str, list[Any]]:
    """The SELECT for a query; the caller appends `now` (for expiry) to the arguments."""
    sql = [f'SELECT id, pk, etag, body FROM "{container.name}" WHERE 1=1']
    args: list[Any] = []
    if key is not None:
        if len(key) == len(container.keys):
            sql.append("AND pk=?")
            args.append(_pk(key))
        elif len(key) == 1:
            sql.append("AND k1=?")
            args.append(key[0])
        else:
            raise ValueError("a query's partition is the whole key or its first level")
    for name, value in equals.items():
        if value is None:
            sql.append(f"AND {_field(container, name)} IS NULL")
        else:
            sql.append(f"AND {_field(container, name)} = ?")
            args.append(int(value) if isinstance(value, bool) else value)
    for name, op, value in ranges:
        # SQLite orders every number below every text; Cosmos compares like with like only
        types = "('text')" if isinstance(value, str) else "('integer','real')"
        sql.append(f"AND {_type_of(container, name)} IN {types}")
        sql.append(f"AND {_field(container, name)} {op} ?")
        args.append(value)
    sql.append("AND (expires IS NULL OR expires > ?)")
    if order_by:
        direction = "DESC" if descending else "ASC"
        sql.append(f"ORDER BY {_field(container, order_by)} {direction}, id {direction}")
    if limit is not None:
        sql.append(f"LIMIT {max(0, int(limit))}")
    return " ".join(sql), args
