"""Every call of the document store, traced and counted (the store itself is not changed).

`TracedStore` wraps any `DocumentStore`: each primitive is a CLIENT span named
`<operation> <container>` (`db.operation.name`, `db.collection.name`, and on Cosmos DB
`azure.cosmosdb.operation.request_charge`), a child of the turn, timer or send that made it.
A call made outside any traced work (the timer poll, the sweep, the gauges' reading) is
counted but not traced: it would be a root span a second, and tell nothing.

Every call counts in `switchboard.store.round_trips` and `switchboard.store.request_charge`.
The charge is the one the backend already records in its `OpStats` (Cosmos DB: the sum of
the `x-ms-request-charge` headers of that call's responses; the embedded store: 0). To get
the charge of *this* call while other calls run concurrently, the stats object is told to
also add each charge to the call in progress (a context variable the wrapper sets).

No span or metric carries a document's body, a query's values, or an id.
"""

from __future__ import annotations

from collections.abc import Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from storage.documents import (
    AlreadyExists,
    Document,
    DocumentStore,
    NotFound,
    OpStats,
    Partition,
    PreconditionFailed,
    WriteOp,
)
from telemetry import runtime

T = TypeVar("T")
# answers the layers above expect and handle (a lost race, a missing document): not failures
EXPECTED = (NotFound, AlreadyExists, PreconditionFailed)


@dataclass(slots=True)
class _Call:
    round_trips: int = 0
    charge: float = 0.0


_CALL: ContextVar[_Call | None] = ContextVar("switchboard_store_call", default=None)


class _ObservedStats(OpStats):
    """OpStats that also adds each record to the store call in progress."""

    __slots__ = ()

    def record(self, op: str, charge: float = 0.0) -> None:
        OpStats.record(self, op, charge)
        call = _CALL.get()
        if call is not None:
            call.round_trips += 1
            call.charge += charge


def _innermost(store: DocumentStore) -> DocumentStore:
    seen = 0
    while isinstance(getattr(store, "inner", None), DocumentStore) and seen < 16:
        store, seen = store.inner, seen + 1
    return store


def traced_store(docs: DocumentStore) -> DocumentStore:
    """`docs`, traced; `docs` itself when telemetry is off."""
    active = runtime.ACTIVE
    if active is None or isinstance(docs, TracedStore):
        return docs
    return TracedStore(docs, active)


class TracedStore(DocumentStore):
    def __init__(self, inner: DocumentStore, active: runtime.Active) -> None:
        super().__init__(inner.layout)
        self.inner = inner
        self.active = active
        # one stats object, shared by every layer (wrappers share their inner store's)
        stats = inner.stats
        if type(stats) is OpStats:
            stats.__class__ = _ObservedStats
        self.stats = stats
        real = _innermost(inner)
        self.system = "azure.cosmosdb" if type(real).__module__ == "storage.cosmos" else "sqlite"
        self.one_trip = self.system == "sqlite"
        self._labels: dict[tuple[str, str], dict[str, str]] = {}
        self._keys: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}

    def __getattr__(self, name: str) -> Any:
        # what a backend offers beyond the protocol (the embedded store's path, Cosmos's
        # delete_database for tests) stays reachable
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _attributes(self, op: str, container: str) -> dict[str, str]:
        labels = self._labels.get((op, container))
        if labels is None:
            labels = self._labels[(op, container)] = {
                "db.system.name": self.system, "db.operation.name": op,
                "db.collection.name": container,
            }
        return labels

    def _key(self, op: str, container: str) -> tuple[tuple[str, str], ...]:
        key = self._keys.get((op, container))
        if key is None:
            key = self._keys[(op, container)] = tuple(self._attributes(op, container).items())
        return key

    def _call(self, op: str, container: str, coro: Coroutine[Any, Any, T],
              size: int | None = None) -> Coroutine[Any, Any, T]:
        """The call, counted; traced when the work it is part of is. On the embedded store
        (one round trip a call, no request charge) a call not traced is counted here and
        is the store's own coroutine: no wrapper, no context variable."""
        if self.one_trip and (runtime.quiet() or not trace.get_current_span().is_recording()):
            self.active.instruments.store_round_trips.add(1, self._key(op, container))
            return coro
        return self._observed(op, container, coro, size)

    async def _observed(self, op: str, container: str, coro: Coroutine[Any, Any, T],
                        size: int | None = None) -> T:
        call = _Call()
        token = _CALL.set(call)
        labels = self._attributes(op, container)
        key = self._key(op, container)
        instruments = self.active.instruments
        try:
            if runtime.quiet() or not trace.get_current_span().is_recording():
                return await coro
            with self.active.tracer.start_as_current_span(
                f"{op} {container}", kind=SpanKind.CLIENT, attributes=labels,
                record_exception=False, set_status_on_exception=False,
            ) as span:
                try:
                    result = await coro
                except EXPECTED as exc:
                    span.set_attribute("error.type", type(exc).__qualname__)
                    raise
                except BaseException as exc:
                    runtime.fail(span, exc)
                    raise
                finally:
                    if size is not None:
                        span.set_attribute("db.operation.batch.size", size)
                    if self.system == "azure.cosmosdb":
                        span.set_attribute("azure.cosmosdb.operation.request_charge",
                                           call.charge)
                if isinstance(result, list):
                    span.set_attribute("db.response.returned_rows", len(result))
                return result
        finally:
            _CALL.reset(token)
            instruments.store_round_trips.add(call.round_trips or 1, key)
            if call.charge:
                instruments.store_charge.add(call.charge, key)

    # -- the protocol ----------------------------------------------------------------

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def open_container(self, container: str) -> None:
        await self.inner.open_container(container)

    async def ping(self) -> None:
        await self.inner.ping()

    async def purge_expired(self, limit: int = 500) -> int:
        return await self.inner.purge_expired(limit)

    # the primitives are plain methods handing back the call to await (`_call`): on the
    # embedded store, a call not traced is the store's own coroutine
    def read(self, container: str, partition: Partition,
             id: str) -> Coroutine[Any, Any, Document | None]:
        return self._call("read", container, self.inner.read(container, partition, id))

    def create(self, container: str, partition: Partition, id: str,
               body: dict[str, Any]) -> Coroutine[Any, Any, Document]:
        return self._call("create", container,
                          self.inner.create(container, partition, id, body))

    def replace(self, container: str, partition: Partition, id: str, body: dict[str, Any],
                if_match: str | None) -> Coroutine[Any, Any, Document]:
        return self._call("replace", container,
                          self.inner.replace(container, partition, id, body, if_match))

    def upsert(self, container: str, partition: Partition, id: str,
               body: dict[str, Any]) -> Coroutine[Any, Any, Document]:
        return self._call("upsert", container,
                          self.inner.upsert(container, partition, id, body))

    def delete(self, container: str, partition: Partition, id: str,
               if_match: str | None = None) -> Coroutine[Any, Any, bool]:
        return self._call("delete", container,
                          self.inner.delete(container, partition, id, if_match))

    def query(self, container: str, partition: Partition | None, equals: dict[str, Any],
              *, order_by: str | None = None, descending: bool = False,
              limit: int | None = None,
              at_most: dict[str, Any] | None = None,
              at_least: dict[str, Any] | None = None) -> Coroutine[Any, Any, list[Document]]:
        return self._call("query", container, self.inner.query(
            container, partition, equals, order_by=order_by, descending=descending,
            limit=limit, at_most=at_most, at_least=at_least))

    def batch(self, container: str, partition: Partition,
              ops: list[WriteOp]) -> Coroutine[Any, Any, list[Document]]:
        return self._call("batch", container,
                          self.inner.batch(container, partition, ops), size=len(ops))
